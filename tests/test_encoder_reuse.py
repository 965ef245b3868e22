"""The WhisperModel that encodes a window once: the real base model, on windows of real speech."""
from __future__ import annotations

import numpy as np
import pytest
from faster_whisper import WhisperModel
from faster_whisper.audio import pad_or_trim

from diarist.streams.inference.encoder_reuse import EncodeOnceModel
from diarist.streams.inference.weights import model_dir

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def model() -> EncodeOnceModel:
    return EncodeOnceModel(str(model_dir("base")), device="cpu", compute_type="int8", cpu_threads=2,
                           local_files_only=True)


@pytest.fixture(scope="module")
def features(model, tmp_path_factory) -> list[np.ndarray]:
    """Three windows of real speech (corpus clips), as batched decoding computes their features."""
    from bench import corpus
    from diarist.streams.inference.media import decode_channels

    clips = corpus.language_clips(tmp_path_factory.mktemp("reuse"))[:3]
    out = []
    for clip in clips:
        [channel] = decode_channels(clip["path"], tmp_path_factory.mktemp("decoded"))
        out.append(pad_or_trim(model.feature_extractor(channel[0:len(channel)])[..., :-1]))
    return out


def test_a_kept_window_is_not_encoded_again_and_comes_back_in_its_place(model, features, monkeypatch):
    first, second, third = features
    kept = model.encode(first)
    model.keep(first, kept)
    encoded: list[int] = []
    encode = WhisperModel.encode
    monkeypatch.setattr(WhisperModel, "encode", lambda self, f: encoded.append(len(f)) or encode(self, f))
    batch = np.array(model.encode(np.stack([second, first, third])))
    assert encoded == [2]  # the two windows it had not seen, in one call
    assert np.array_equal(batch[1], np.array(kept)[0])
    alone = np.array(encode(model, np.stack([second, third])))
    assert np.array_equal(batch[[0, 2]], alone)
    encoded.clear()
    model.encode(first[None])  # a kept output is used once
    assert encoded == [1]
