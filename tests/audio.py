"""Speech with a known text, made by espeak-ng, for tests and benchmarks."""
from __future__ import annotations

import subprocess
from pathlib import Path

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Transcription jobs flow through Kafka topics and come out as timed words.",
    "Every morning the baker opens the shop before the sun comes up.",
    "She bought three apples, a loaf of bread and a bottle of milk.",
    "The weather report says it will rain again tomorrow afternoon.",
    "Please close the window when you leave the meeting room.",
]


def speak(text: str, path: Path, voice: str = "en-us", words_per_minute: int = 150) -> Path:
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(words_per_minute), "-w", str(path), text],
                   check=True, capture_output=True)
    return path


def long_text(seconds: float) -> str:
    """About `seconds` of English at espeak's 150 words a minute."""
    words_needed = int(seconds * 150 / 60)
    text, i = [], 0
    while sum(len(s.split()) for s in text) < words_needed:
        text.append(SENTENCES[i % len(SENTENCES)])
        i += 1
    return " ".join(text)


# Voices that Resemblyzer tells apart (measured: docs/accuracy.md); espeak-ng voice and pitch.
VOICES = [("en-us+m3", 20), ("en-us+f4", 75), ("en-gb+m4", 45), ("en-us+f1", 55)]
DIALOGUE = [
    "Hello there, how are you doing today?",
    "I am fine, thank you very much for asking.",
    "Did you see the game last night on television?",
    "Yes, it was a great match with many goals.",
    "Let us meet again tomorrow at the office.",
    "Sure, I will bring the documents with me.",
    "The weather is quite nice this afternoon.",
    "Indeed, we should go for a walk later.",
]


def dialogue(path: Path, speakers: int, lines: list[str] = DIALOGUE, gap: float = 0.7,
             language: str = "en") -> list[tuple[float, float, int, str]]:
    """A dialogue of `speakers` voices taking turns; returns the exact (start, end, speaker,
    text) of every turn."""
    import numpy as np
    import soundfile

    pieces, turns, at = [], [], 0.0
    for i, text in enumerate(lines):
        voice, pitch = VOICES[i % speakers]
        if language != "en":
            voice = f"{language}+{voice.split('+')[1]}"
        speak_at = path.with_suffix(f".turn{i}.wav")
        subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "-w", str(speak_at), text],
                       check=True, capture_output=True)
        samples, rate = soundfile.read(speak_at, dtype="float32")
        speak_at.unlink()
        turns.append((at, at + len(samples) / rate, i % speakers, text))
        pieces += [samples, np.zeros(int(gap * rate), dtype=np.float32)]
        at += len(samples) / rate + gap
    soundfile.write(path, np.concatenate(pieces), rate)
    return turns


def stereo(path: Path, left: Path, right: Path) -> Path:
    """Two recordings as the two channels of one file (the shorter padded with silence)."""
    subprocess.run(["sox", "-M", str(left), str(right), str(path)], check=True, capture_output=True)
    return path


def repeated(path: Path, source: Path, times: int) -> Path:
    subprocess.run(["sox", str(source), str(path), "repeat", str(times - 1)], check=True, capture_output=True)
    return path
