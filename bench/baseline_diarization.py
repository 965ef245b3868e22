"""Today's diarization (before issue 11), frozen here so that bench/accuracy.py can print it beside
the current method on the same corpus in one run. A copy of streams/inference/diarization.py as of
commit d18069b: VAD regions cut into pieces of at most 3 s, one Resemblyzer embedding per piece,
average-linkage agglomerative clustering on cosine distance with a threshold of 0.21 (tuned on
espeak-ng voices).
"""
from __future__ import annotations

from dataclasses import replace
from functools import cache

import numpy as np

from diarist.streams.inference.diarization import SpeakerBounds, Turn
from diarist.streams.inference.media import SAMPLE_RATE, Channel

DEFAULT_THRESHOLD = 0.21  # cosine distance between voices; measured on generated voices (docs/accuracy.md)
PIECE_SECONDS = 3.0
SHORTEST_PIECE = 0.4
# Clustering holds a matrix of every pair of pieces; above this many pieces (about two hours of
# speech), an even sample is clustered and the rest join the nearest cluster, so that memory
# stays bounded (2000 pieces: a 32 MB matrix) whatever the duration.
MAX_CLUSTERED = 2000


@cache
def _encoder():
    from resemblyzer import VoiceEncoder

    return VoiceEncoder("cpu", verbose=False)


def pieces(regions: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Speech regions cut into nearly equal pieces of at most PIECE_SECONDS."""
    out = []
    for start, end in regions:
        n = max(1, int(np.ceil((end - start) / PIECE_SECONDS)))
        edges = np.linspace(start, end, n + 1)
        out += [(float(a), float(b)) for a, b in zip(edges, edges[1:])]
    return out


def diarize(audio: Channel, regions: list[tuple[float, float]], bounds: SpeakerBounds) -> list[Turn]:
    """Speaker turns over the speech regions; speakers numbered in order of first speech."""
    bounds = replace(bounds, threshold=DEFAULT_THRESHOLD)
    spans = [p for p in pieces(regions) if p[1] - p[0] >= SHORTEST_PIECE]
    if not spans:
        return [Turn(start, end, 0) for start, end in regions]
    embeddings = np.array([_encoder().embed_utterance(audio[int(a * SAMPLE_RATE):int(b * SAMPLE_RATE)])
                           for a, b in spans])
    labels = _renumbered(cluster(embeddings, bounds))
    turns: list[Turn] = []
    for (start, end), label in zip(spans, labels):
        if turns and turns[-1].speaker == label and start - turns[-1].end < 0.5:
            turns[-1] = Turn(turns[-1].start, end, label)
        else:
            turns.append(Turn(start, end, int(label)))
    return turns


def cluster(embeddings: np.ndarray, bounds: SpeakerBounds) -> np.ndarray:
    """A speaker label per embedding."""
    if len(embeddings) <= MAX_CLUSTERED:
        return _agglomerative(embeddings, bounds)
    sample = np.linspace(0, len(embeddings) - 1, MAX_CLUSTERED).round().astype(int)
    labels = _agglomerative(embeddings[sample], bounds)
    centroids = np.array([embeddings[sample][labels == label].mean(axis=0) for label in range(labels.max() + 1)])
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    return np.argmax(unit @ centroids.T, axis=1)


def _agglomerative(embeddings: np.ndarray, bounds: SpeakerBounds) -> np.ndarray:
    from sklearn.cluster import AgglomerativeClustering

    n = len(embeddings)
    if n == 1:
        return np.zeros(1, dtype=int)

    def fit(**how) -> np.ndarray:
        return AgglomerativeClustering(metric="cosine", linkage="average", **how).fit_predict(embeddings)

    if bounds.count:
        return fit(n_clusters=min(bounds.count, n))
    labels = fit(n_clusters=None, distance_threshold=bounds.threshold)
    found = len(set(labels))
    if bounds.minimum and found < bounds.minimum:
        return fit(n_clusters=min(bounds.minimum, n))
    if bounds.maximum and found > bounds.maximum:
        return fit(n_clusters=bounds.maximum)
    return labels


def _renumbered(labels: np.ndarray) -> list[int]:
    order: dict[int, int] = {}
    return [order.setdefault(int(label), len(order)) for label in labels]
