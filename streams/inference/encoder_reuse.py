"""faster-whisper's WhisperModel, made to encode a window of audio once.

Language identification (pipeline._language) runs Whisper's encoder on up to three of the very
windows that batched decoding (asr.FasterWhisper) decodes afterwards. On the CPU the encoder is
most of what identifying a window costs (about 0.6 s with base on 2 cores), so its output is
kept, keyed by the window's features, and handed back when decoding asks to encode the same
features: identification then costs one decoder step a window. A kept output is used once, and
at most KEPT are held. Only on the CPU, where the output is a plain array: a GPU encodes a window
in milliseconds.
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict

import ctranslate2
import numpy as np
from faster_whisper import WhisperModel

KEPT = 4  # more than the pipeline's language windows (3): one job's windows never push out each other


def _key(features: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(features, dtype=np.float32).tobytes(), digest_size=16).digest()


class EncodeOnceModel(WhisperModel):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._kept: OrderedDict[bytes, np.ndarray] = OrderedDict()

    def keep(self, features: np.ndarray, encoded: ctranslate2.StorageView) -> None:
        """Keeps the encoder output of one window's features (n_mels, frames) for a later encode()."""
        if self.model.device != "cpu":
            return
        self._kept[_key(features)] = np.array(encoded)[0]
        while len(self._kept) > KEPT:
            self._kept.popitem(last=False)

    def encode(self, features: np.ndarray) -> ctranslate2.StorageView:
        batch = features[None] if features.ndim == 2 else features
        keys = [_key(row) for row in batch] if self._kept else []
        if not any(key in self._kept for key in keys):
            return super().encode(features)
        missing = [i for i, key in enumerate(keys) if key not in self._kept]
        fresh = iter(np.array(super().encode(batch[missing])) if missing else [])
        rows = [self._kept[key] if key in self._kept else next(fresh) for key in keys]
        for key in keys:
            self._kept.pop(key, None)
        return ctranslate2.StorageView.from_array(np.ascontiguousarray(np.stack(rows)))
