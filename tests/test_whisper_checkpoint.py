"""openai-whisper on checkpoints converted from the CTranslate2 models faster-whisper uses."""
from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import ctranslate2
import jiwer
import numpy as np
import pytest
import torch
import whisper
from faster_whisper import WhisperModel
from faster_whisper.audio import decode_audio
from whisper.audio import log_mel_spectrogram, pad_or_trim

from diarist.streams.inference.checkpoint import checkpoint_path, load_model, read_ct2_variables
from diarist.streams.inference.weights import MODELS, model_dir

from .audio import SENTENCES, speak

pytestmark = pytest.mark.system

NAMES = ["tiny.en", "base"]
SAMPLE_RATE = 16000
TIME_STEP = 0.02  # Whisper's timestamp resolution: a word may end one step past the audio


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> tuple[Path, str, np.ndarray]:
    text = " ".join(SENTENCES[:4])
    path = speak(text, tmp_path_factory.mktemp("audio") / "speech.wav")
    # openai-whisper decodes a path with the ffmpeg program, which this machine lacks; PyAV
    # (as faster-whisper uses it) gives the same 16 kHz mono float32 samples.
    return path, text, decode_audio(str(path), sampling_rate=SAMPLE_RATE)


@pytest.fixture(scope="module")
def transcripts(speech):
    """openai-whisper's result per model, each transcribed once for the module."""
    results: dict[str, dict] = {}

    def transcribe(name: str) -> dict:
        if name not in results:
            torch.manual_seed(0)  # temperature fallback samples; keep reruns identical
            results[name] = load_model(name).transcribe(
                speech[2], word_timestamps=True, language="en", fp16=False,
                condition_on_previous_text=False, beam_size=5, best_of=5)
        return results[name]
    return transcribe


def normalise(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s']", " ", text.lower()).split())


def wer(reference: str, hypothesis: str) -> float:
    return jiwer.wer(normalise(reference), normalise(hypothesis))


@pytest.mark.parametrize("name", NAMES)
def test_checkpoint_loads_strictly_with_the_ct2_dimensions(name):
    source = model_dir(name)
    variables = read_ct2_variables(source / "model.bin")
    config = json.loads((source / "config.json").read_text())
    vocabulary = (source / "vocabulary.txt").read_text().splitlines()

    model = load_model(name)  # load_state_dict(strict=True) inside

    dims = model.dims
    assert dims.n_vocab == len(vocabulary) == variables["decoder/embeddings/weight"].shape[0]
    assert dims.n_audio_head == int(variables["encoder/num_heads"])
    assert dims.n_text_head == int(variables["decoder/num_heads"])
    assert dims.n_audio_ctx == 1500 and dims.n_text_ctx == 448 and dims.n_mels == 80
    assert model.is_multilingual == MODELS[name].multilingual
    # The tokenizer openai-whisper picks from the dims ends text where CTranslate2's does.
    tokenizer = whisper.tokenizer.get_tokenizer(model.is_multilingual, num_languages=model.num_languages)
    assert tokenizer.eot == config["suppress_ids_begin"][-1]
    # Output projection tied to the embedding, as in both formats.
    assert model.decoder.token_embedding.weight.dtype == torch.float32
    assert torch.equal(model.decoder.token_embedding.weight,
                       torch.from_numpy(variables["decoder/projection/weight"].astype(np.float32)))
    # Alignment heads from config.json, and they agree with openai-whisper's own table.
    heads = model.alignment_heads.to_dense()
    assert sorted(map(list, heads.nonzero().tolist())) == sorted(config["alignment_heads"])
    reference = whisper.model.Whisper(dims)
    reference.set_alignment_heads(whisper._ALIGNMENT_HEADS[name])
    assert torch.equal(reference.alignment_heads.to_dense(), heads)
    assert not model.training


@pytest.mark.parametrize("name", NAMES)
def test_encoder_and_logits_match_ctranslate2(name, speech):
    """Same weights, same graph: both runtimes in float32 agree to rounding error."""
    model = load_model(name)
    ct2 = ctranslate2.models.Whisper(str(model_dir(name)), device="cpu", compute_type="float32")
    mel = log_mel_spectrogram(torch.from_numpy(pad_or_trim(speech[2])), model.dims.n_mels)[None]
    tokenizer = whisper.tokenizer.get_tokenizer(
        model.is_multilingual, num_languages=model.num_languages, language="en", task="transcribe")
    prompt = list(tokenizer.sot_sequence_including_notimestamps)

    features = ct2.encode(ctranslate2.StorageView.from_array(mel.numpy()))
    generated = ct2.generate(features, [prompt], beam_size=1, max_length=20, return_logits_vocab=True,
                             suppress_blank=False, suppress_tokens=[])[0]
    tokens = generated.sequences_ids[0]
    with torch.no_grad():
        audio_features = model.embed_audio(mel)
        logits = model.logits(torch.tensor([prompt + tokens]), audio_features)[0, len(prompt) - 1:-1]

    expected = np.array(features)
    assert np.abs(audio_features.numpy() - expected).max() <= 1e-3 * np.abs(expected).max()
    expected_logits = np.stack([np.array(step).reshape(-1) for step in generated.logits[0]])[:len(tokens)]
    assert len(tokens) >= 5 and logits.shape == expected_logits.shape
    assert np.abs(logits.numpy() - expected_logits).max() <= 1e-2  # logits reach ~40


@pytest.mark.parametrize("name", NAMES)
def test_transcribes_english_with_ordered_word_times(name, speech, transcripts):
    _, text, audio = speech
    result = transcripts(name)

    assert wer(text, result["text"]) <= 0.15, result["text"]
    words = [w for segment in result["segments"] for w in segment["words"]]
    assert len(words) >= 0.85 * len(text.split())
    duration = len(audio) / SAMPLE_RATE
    starts = [w["start"] for w in words]
    assert starts == sorted(starts)
    for word in words:
        assert 0 <= word["start"] <= word["end"] <= duration + TIME_STEP, word
    assert any(w["end"] > w["start"] for w in words)


def test_base_matches_faster_whisper(speech, transcripts):
    path, _, _ = speech
    ours = transcripts("base")["text"]
    fw = WhisperModel(str(model_dir("base")), device="cpu", compute_type="int8", local_files_only=True)
    segments, _ = fw.transcribe(str(path), language="en", beam_size=5, condition_on_previous_text=False)
    theirs = " ".join(segment.text for segment in segments)

    assert wer(theirs, ours) <= 0.10, (theirs, ours)


def test_conversion_is_cached_and_loads_in_openai_whisper(tmp_path, monkeypatch):
    monkeypatch.setenv("DIARIST_CACHE_DIR", str(tmp_path))
    first = checkpoint_path("tiny.en")
    mtime = first.stat().st_mtime_ns

    again = checkpoint_path("tiny.en")

    assert again == first == tmp_path / "models" / "openai-whisper-tiny.en.pt"
    assert again.stat().st_mtime_ns == mtime
    assert [p.name for p in first.parent.iterdir()] == [first.name]  # no temp file left
    # The file is a checkpoint in openai-whisper's own format: its loader takes it as is.
    model = whisper.load_model(str(first), device="cpu")
    assert model.dims.n_vocab == 51864


def test_concurrent_conversions_leave_one_whole_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("DIARIST_CACHE_DIR", str(tmp_path))
    paths, errors = [], []

    def convert() -> None:
        try:
            paths.append(checkpoint_path("tiny.en"))
        except Exception as e:  # surfaced by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=convert) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert not errors and len(set(paths)) == 1
    assert [p.name for p in paths[0].parent.iterdir()] == [paths[0].name]
    checkpoint = torch.load(paths[0], map_location="cpu", weights_only=True)
    assert checkpoint["dims"]["n_text_layer"] == 4


def test_unknown_model_is_refused():
    with pytest.raises(ValueError, match="unknown model"):
        checkpoint_path("large-v9")
