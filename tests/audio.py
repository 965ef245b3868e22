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
