"""openai-whisper on the weights that faster-whisper uses.

openai-whisper loads only its own .pt checkpoints, which no reachable package ships; the Whisper
models we have come in CTranslate2 format (see models.py). This module reads a CTranslate2
model.bin, renames and unfuses its variables into openai-whisper's state dict, and caches the
result once as a checkpoint in openai-whisper's own format, so that `whisper.load_model(path)`
would take it as well as `load_model` here.
"""
from __future__ import annotations

import base64
import gzip
import json
import os
import re
import struct
import tempfile
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
import whisper.model

from diarist.streams.inference.weights import MODELS, UnknownModel, cache_dir, model_dir

# Index = CTranslate2's DataType enum (include/ctranslate2/types.h). bfloat16 has no numpy
# dtype, so it is read as its raw 16 bits and widened below.
_DTYPES = (np.float32, np.int8, np.int16, np.int32, np.float16, np.uint16)
_BFLOAT16 = 5
_HEAD_SIZE = 64  # every Whisper size has 64-wide heads; openai-whisper relies on it too


def read_ct2_variables(model_bin: Path) -> dict[str, np.ndarray]:
    """Every variable of a CTranslate2 model.bin by name, aliases resolved to their target."""
    with open(model_bin, "rb") as f:
        version = _unpack(f, "I")
        if version < 5:
            # Before version 5 the layout differs (no revision, other string encoding).
            raise ValueError(f"{model_bin}: CTranslate2 binary version {version} is not supported")
        _string(f)  # spec name, e.g. WhisperSpec
        _unpack(f, "I")  # spec revision
        variables: dict[str, np.ndarray] = {}
        for _ in range(_unpack(f, "I")):
            name = _string(f)
            shape = tuple(_unpack(f, "I") for _ in range(_unpack(f, "B")))
            type_id = _unpack(f, "B")
            data = np.frombuffer(f.read(_unpack(f, "I")), dtype=_DTYPES[type_id]).reshape(shape)
            if type_id == _BFLOAT16:
                data = (data.astype(np.uint32) << 16).view(np.float32)
            variables[name] = data
        for _ in range(_unpack(f, "I")):
            alias, target = _string(f), _string(f)
            variables[alias] = variables[target]
    return variables


def _unpack(f: BinaryIO, fmt: str) -> int:
    size = struct.calcsize("<" + fmt)
    return struct.unpack("<" + fmt, f.read(size))[0]


def _string(f: BinaryIO) -> str:
    # Length counts the trailing NUL byte.
    return f.read(_unpack(f, "H"))[:-1].decode("utf-8")


def to_state_dict(variables: dict[str, np.ndarray]) -> tuple[dict[str, int], dict[str, torch.Tensor]]:
    """openai-whisper's (dims, state_dict) for the variables of a CTranslate2 WhisperSpec."""
    v = variables
    if any(name.endswith("weight_scale") for name in v):
        raise ValueError("quantized CTranslate2 weights cannot be converted; use a float model")
    n_vocab, n_text_state = v["decoder/embeddings/weight"].shape
    n_audio_state, n_mels, _ = v["encoder/conv1/weight"].shape
    dims = dict(
        n_mels=n_mels, n_vocab=n_vocab,
        n_audio_ctx=v["encoder/position_encodings/encodings"].shape[0],
        n_audio_state=n_audio_state, n_audio_head=n_audio_state // _HEAD_SIZE,
        n_audio_layer=_count_layers(v, "encoder"),
        n_text_ctx=v["decoder/position_encodings/encodings"].shape[0],
        n_text_state=n_text_state, n_text_head=n_text_state // _HEAD_SIZE,
        n_text_layer=_count_layers(v, "decoder"),
    )
    dims = {k: int(x) for k, x in dims.items()}
    for side in ("encoder", "decoder"):
        stored = v.get(f"{side}/num_heads")
        derived = dims["n_audio_head" if side == "encoder" else "n_text_head"]
        if stored is not None and int(stored) != derived:
            raise ValueError(f"{side} has {int(stored)} heads, not the {derived} its width implies")

    sd: dict[str, np.ndarray] = {
        "encoder.conv1.weight": v["encoder/conv1/weight"],
        "encoder.conv1.bias": v["encoder/conv1/bias"],
        "encoder.conv2.weight": v["encoder/conv2/weight"],
        "encoder.conv2.bias": v["encoder/conv2/bias"],
        # The same sinusoids openai-whisper would compute; a buffer it still expects to load.
        "encoder.positional_embedding": v["encoder/position_encodings/encodings"],
        "decoder.positional_embedding": v["decoder/position_encodings/encodings"],
        # The output projection is tied to this embedding in both formats.
        "decoder.token_embedding.weight": v["decoder/embeddings/weight"],
        **_layer_norm(v, "encoder/layer_norm", "encoder.ln_post"),
        **_layer_norm(v, "decoder/layer_norm", "decoder.ln"),
    }
    for side, n_layers in (("encoder", dims["n_audio_layer"]), ("decoder", dims["n_text_layer"])):
        for i in range(n_layers):
            src, dst = f"{side}/layer_{i}", f"{side}.blocks.{i}"
            sd |= _layer_norm(v, f"{src}/self_attention/layer_norm", f"{dst}.attn_ln")
            sd |= _attention(v, f"{src}/self_attention", f"{dst}.attn", cross=False)
            if side == "decoder":
                sd |= _layer_norm(v, f"{src}/attention/layer_norm", f"{dst}.cross_attn_ln")
                sd |= _attention(v, f"{src}/attention", f"{dst}.cross_attn", cross=True)
            sd |= _layer_norm(v, f"{src}/ffn/layer_norm", f"{dst}.mlp_ln")
            for j, k in (("0", "0"), ("1", "2")):  # mlp.1 is the GELU
                sd[f"{dst}.mlp.{k}.weight"] = v[f"{src}/ffn/linear_{j}/weight"]
                sd[f"{dst}.mlp.{k}.bias"] = v[f"{src}/ffn/linear_{j}/bias"]
    # Copies, because arrays from np.frombuffer are read-only and torch warns on them.
    return dims, {k: torch.from_numpy(np.array(a)) for k, a in sd.items()}


def _count_layers(v: dict[str, np.ndarray], side: str) -> int:
    pattern = re.compile(rf"{side}/layer_(\d+)/")
    return 1 + max(int(m.group(1)) for name in v if (m := pattern.match(name)))


def _layer_norm(v: dict[str, np.ndarray], src: str, dst: str) -> dict[str, np.ndarray]:
    return {f"{dst}.weight": v[f"{src}/gamma"], f"{dst}.bias": v[f"{src}/beta"]}


def _attention(v: dict[str, np.ndarray], src: str, dst: str, cross: bool) -> dict[str, np.ndarray]:
    # CTranslate2 fuses projections: self-attention linear_0 is q|k|v, linear_1 the output;
    # cross-attention linear_0 is q, linear_1 k|v (both read the encoder), linear_2 the output.
    # The key's bias is dropped: openai-whisper has none, and it could not matter anyway, as it
    # adds the same q·b to every score of a query, which softmax cancels.
    if cross:
        q_w, q_b = v[f"{src}/linear_0/weight"], v[f"{src}/linear_0/bias"]
        (k_w, v_w), (_, v_b) = (np.split(v[f"{src}/linear_1/{p}"], 2) for p in ("weight", "bias"))
        out = "linear_2"
    else:
        (q_w, k_w, v_w), (q_b, _, v_b) = (np.split(v[f"{src}/linear_0/{p}"], 3) for p in ("weight", "bias"))
        out = "linear_1"
    return {
        f"{dst}.query.weight": q_w, f"{dst}.query.bias": q_b,
        f"{dst}.key.weight": k_w,
        f"{dst}.value.weight": v_w, f"{dst}.value.bias": v_b,
        f"{dst}.out.weight": v[f"{src}/{out}/weight"], f"{dst}.out.bias": v[f"{src}/{out}/bias"],
    }


def alignment_heads_dump(heads: list[list[int]], n_text_layer: int, n_text_head: int) -> bytes:
    """[(layer, head), ...] packed the way Whisper.set_alignment_heads takes them."""
    mask = np.zeros((n_text_layer, n_text_head), dtype=bool)
    for layer, head in heads:
        mask[layer, head] = True
    return base64.b85encode(gzip.compress(mask.tobytes()))


def checkpoint_path(model_name: str) -> Path:
    """The openai-whisper checkpoint of a model, converted from CTranslate2 on first use."""
    if model_name not in MODELS:
        raise UnknownModel(f"unknown model {model_name!r}; known: {', '.join(MODELS)}")
    target = cache_dir() / "models" / f"openai-whisper-{model_name}.pt"
    if target.exists():
        return target
    source = model_dir(model_name)
    dims, state_dict = to_state_dict(read_ct2_variables(source / "model.bin"))
    checkpoint = {"dims": dims, "model_state_dict": state_dict}
    # openai-whisper's load_model takes alignment heads from a table keyed by its own model
    # names; keeping them in the checkpoint makes it self-contained (extra keys are ignored).
    heads = json.loads((source / "config.json").read_text()).get("alignment_heads")
    if heads:
        checkpoint["alignment_heads"] = alignment_heads_dump(heads, dims["n_text_layer"], dims["n_text_head"])
    target.parent.mkdir(parents=True, exist_ok=True)
    # A unique temp file then an atomic rename: processes converting at once each write their
    # own file, and readers only ever see a whole checkpoint.
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(checkpoint, f)
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; other users may share the cache
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def load_model(model_name: str, device: str = "cpu") -> whisper.model.Whisper:
    """An openai-whisper model in eval mode: float16 on CUDA, float32 elsewhere."""
    checkpoint = torch.load(checkpoint_path(model_name), map_location="cpu", weights_only=True)
    model = whisper.model.Whisper(whisper.model.ModelDimensions(**checkpoint["dims"]))
    model.load_state_dict(checkpoint["model_state_dict"], strict=True)
    if "alignment_heads" in checkpoint:
        model.set_alignment_heads(checkpoint["alignment_heads"])
    model = model.half() if torch.device(device).type == "cuda" else model.float()
    return model.to(device).eval()
