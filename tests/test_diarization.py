"""Clustering of voice embeddings: speaker counts from the threshold or the bounds, and bounded
memory for any number of pieces."""
import numpy as np
import pytest

from diarist.streams.inference import diarization
from diarist.streams.inference.diarization import SpeakerBounds, cluster

pytestmark = pytest.mark.unit


def voices(speakers: int, per_speaker: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings around `speakers` random unit directions (256-d, like Resemblyzer's), and who is who."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(speakers, 256))
    who = np.repeat(np.arange(speakers), per_speaker)
    rng.shuffle(who)
    embeddings = centres[who] / np.linalg.norm(centres[who], axis=1, keepdims=True) + rng.normal(0, 0.01, (len(who), 256))
    return embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True), who


def same_partition(labels: np.ndarray, truth: np.ndarray) -> bool:
    """The same grouping, whatever the label numbers."""
    pairs = {(int(a), int(b)) for a, b in zip(labels, truth, strict=True)}
    return len(pairs) == len(set(labels)) == len(set(truth))


@pytest.mark.parametrize("speakers", [1, 3])
def test_the_threshold_finds_the_speakers(speakers):
    embeddings, who = voices(speakers, 40)
    assert same_partition(cluster(embeddings, SpeakerBounds()), who)


def test_bounds_override_the_threshold():
    embeddings, who = voices(4, 20)
    assert len(set(cluster(embeddings, SpeakerBounds(count=2)))) == 2
    assert len(set(cluster(embeddings, SpeakerBounds(maximum=3)))) == 3
    assert same_partition(cluster(embeddings, SpeakerBounds(minimum=2)), who)


def test_more_pieces_than_are_clustered_at_once_still_get_their_speaker(monkeypatch):
    monkeypatch.setattr(diarization, "MAX_CLUSTERED", 100)
    embeddings, who = voices(3, 400)  # 1200 pieces: 100 clustered, the rest to the nearest voice
    assert same_partition(cluster(embeddings, SpeakerBounds()), who)
