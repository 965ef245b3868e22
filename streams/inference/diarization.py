"""Who spoke when: sliding-window voice embeddings (Resemblyzer), speaker changes found inside
speech regions, clustering that finds the number of speakers, and a smoothing resegmentation.

1. Windows: every speech region from the VAD is covered by windows of WINDOW seconds every HOP
   seconds (a region shorter than a window is one window). Each region is volume-normalised and
   all windows are embedded in batches by one speaker encoder, loaded once per process.
2. Speaker changes: inside a region, the voice just before each point is compared with the voice
   just after it (two windows that do not overlap); where that distance peaks above
   CHANGE_THRESHOLD the region is cut. Pauses between regions cut too. The pieces are the first
   groups of windows.
3. Clustering: groups of fewer than MIN_WINDOWS windows join the nearest group (a voice heard for
   under about four seconds is not counted as a speaker); then the two closest groups are merged
   while their distance is under a limit that grows for small groups (DEFAULT_THRESHOLD +
   SIZE_TERM / windows of the smaller), and does not jump well above the merges before it (JUMP),
   so that the number of speakers comes from the data (calibrated on the tuning split of the
   real-voice corpus and unscored espeak dialogues: bench/tune_diarization.py, docs/accuracy.md).
   The distance compares the mean similarity between two groups
   with the mean similarity inside each, so that two halves of one voice come out near 0 however
   few windows they have. `speakers_count` gives exactly that many speakers (as far as there are
   windows), `min_speakers` and `max_speakers` bound the number.
4. Resegmentation: every window is given the speaker whose mean voice it is closest to, runs
   shorter than MIN_RUN windows are given to their neighbours, and a change of speaker falls
   halfway between the centres of the two windows.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from diarist.streams.inference.media import SAMPLE_RATE, Channel

# Distance under which two large groups of speech are one voice; a pair whose smaller group has
# m windows may be merged up to DEFAULT_THRESHOLD + SIZE_TERM / m, because two halves of one voice
# heard for a few seconds each lie further apart by chance than two long ones. Calibrated on the
# tuning split of the real-voice corpus (bench/corpus.py; bench/tune_diarization.py prints the sweep).
DEFAULT_THRESHOLD = 0.08
SIZE_TERM = 0.25
# A merge whose distance is above JUMP_FLOOR and JUMP times the largest distance merged so far is
# refused: within one file the merges of one voice's pieces are all alike, and a jump well above
# them is a second voice even under the threshold (two espeak voices of one language, ~0.10).
JUMP = 1.7
JUMP_FLOOR = 0.08
WINDOW = 1.5          # seconds of speech per embedding
HOP = 0.75            # seconds between window starts
SHORTEST = 0.3        # a region shorter than this is given its neighbour's speaker
CHANGE_THRESHOLD = 0.3  # cosine distance between the voice before and after a point that cuts there
MIN_WINDOWS = 5       # a group of fewer windows joins its nearest group before groups are compared
INITIAL_DISTANCE = 0.25  # first grouping when none is given (average linkage, cosine)
PRIOR_WITHIN = 0.73   # mean similarity of two windows of one voice (tuning split), for small groups
PRIOR_WEIGHT = 2.0    # how many window pairs that prior counts for
MIN_RUN = 2           # windows a speaker must hold in the resegmentation (shorter runs are flips)
BATCH = 256           # windows through the encoder at once
FRAMES_PER_SECOND = 100  # Resemblyzer's mel frames: 10 ms apart
# Clustering holds matrices of every pair of groups; above this many windows (25 minutes of
# speech), an even sample is clustered and the rest join the nearest voice, so that memory and
# time stay bounded whatever the duration.
MAX_CLUSTERED = 2000


@dataclass(frozen=True)
class Turn:
    start: float
    end: float
    speaker: int


@dataclass(frozen=True)
class SpeakerBounds:
    count: int | None = None
    minimum: int | None = None
    maximum: int | None = None
    threshold: float = DEFAULT_THRESHOLD


@cache
def _encoder():
    """The speaker encoder, loaded once per process."""
    from resemblyzer import VoiceEncoder

    return VoiceEncoder("cpu", verbose=False)


def load_encoder() -> None:
    """Loads the speaker encoder now and embeds one window of noise: the engine process does it
    at start, with the ASR model, so that no job pays for it (the first embedding of a process
    took 2.2 s more than the next ones: librosa's and torch's first calls)."""
    _encoder()
    noise = np.random.default_rng(0).normal(0.0, 0.1, int(2 * WINDOW * SAMPLE_RATE)).astype(np.float32)
    windows(noise, [(0.0, 2 * WINDOW)])


@dataclass
class Windows:
    starts: np.ndarray      # seconds
    ends: np.ndarray        # seconds
    region: np.ndarray      # index of the speech region each window belongs to
    embeddings: np.ndarray  # (n, 256), unit length


def windows(audio: Channel | np.ndarray, regions: list[tuple[float, float]]) -> Windows:
    """Windows over the speech regions, embedded in batches."""
    from resemblyzer.audio import normalize_volume, wav_to_mel_spectrogram
    from resemblyzer.hparams import audio_norm_target_dBFS

    size, hop = int(WINDOW * FRAMES_PER_SECOND), int(HOP * FRAMES_PER_SECOND)
    spans, owner, mels = [], [], []
    for r, (start, end) in enumerate(regions):
        if end - start < SHORTEST:
            continue
        wav = np.asarray(audio[int(start * SAMPLE_RATE):int(end * SAMPLE_RATE)], dtype=np.float32)
        wav = normalize_volume(wav, audio_norm_target_dBFS)
        mel = wav_to_mel_spectrogram(wav)
        firsts = list(range(0, max(1, len(mel) - size + 1), hop))
        if len(mel) > size and firsts[-1] + size < len(mel):  # the region's end gets a window too
            firsts.append(len(mel) - size)
        for first in firsts:
            piece = mel[first:first + size]
            spans.append((start + first / FRAMES_PER_SECOND, start + (first + len(piece)) / FRAMES_PER_SECOND))
            owner.append(r)
            mels.append(piece)
    embeddings = _embed(mels)
    starts, ends = (np.array([s[i] for s in spans]) if spans else np.zeros(0) for i in (0, 1))
    return Windows(starts, ends, np.array(owner, dtype=int), embeddings)


def _embed(mels: list[np.ndarray]) -> np.ndarray:
    """Embeddings of mel windows; windows of one length go through the encoder together."""
    import torch

    out = np.zeros((len(mels), 256), dtype=np.float32)
    encoder = _encoder()
    by_length: dict[int, list[int]] = {}
    for i, mel in enumerate(mels):
        by_length.setdefault(len(mel), []).append(i)
    with torch.no_grad():
        for indices in by_length.values():
            for b in range(0, len(indices), BATCH):
                chosen = indices[b:b + BATCH]
                batch = torch.from_numpy(np.stack([mels[i] for i in chosen])).to(encoder.device)
                out[chosen] = encoder(batch).cpu().numpy()
    return out


def diarize(audio: Channel | np.ndarray, regions: list[tuple[float, float]], bounds: SpeakerBounds) -> list[Turn]:
    """Speaker turns over the speech regions; speakers numbered in order of first speech."""
    w = windows(audio, regions)
    if len(w.embeddings) == 0:
        return [Turn(start, end, 0) for start, end in regions]
    initial = np.zeros(len(w.region), dtype=int)
    for k, (a, b) in enumerate(changes(w)):
        initial[a:b] = k
    labels = cluster(w.embeddings, bounds, initial)
    labels = resegment(w, labels, keep_all=bool(bounds.count or bounds.minimum))
    return _turns(w, labels, regions)


def changes(w: Windows) -> list[tuple[int, int]]:
    """Segments as [first, last) window indices: cut at pauses (region boundaries) and where the
    voice before a point differs from the voice after it by more than CHANGE_THRESHOLD, at the
    local peaks of that distance."""
    step = max(1, int(round(WINDOW / HOP)))  # window i and window i + step do not overlap
    n = len(w.region)
    cuts = {0, n} | {i for i in range(1, n) if w.region[i] != w.region[i - 1]}
    distance = np.zeros(n)
    for i in range(1, n):
        before, after = i - 1, i - 1 + step  # the window just before point i, the first one after it
        if after < n and w.region[before] == w.region[after]:
            distance[i] = 1 - float(w.embeddings[before] @ w.embeddings[after])
    for i in range(1, n):
        lo, hi = max(0, i - step), min(n, i + step + 1)
        if distance[i] > CHANGE_THRESHOLD and distance[i] == distance[lo:hi].max():
            cuts.add(min(n, i + step // 2))
    ordered = sorted(cuts)
    return [(a, b) for a, b in zip(ordered, ordered[1:]) if b > a]


def cluster(embeddings: np.ndarray, bounds: SpeakerBounds, initial: np.ndarray | None = None) -> np.ndarray:
    """A speaker label per embedding (window), numbered from 0.

    initial: a first grouping (the segments between speaker changes); without one, average-linkage
    clustering at INITIAL_DISTANCE makes it. Groups of fewer than MIN_WINDOWS embeddings join
    the nearest group (a voice heard for under about three seconds is not counted as a speaker);
    then the two groups with the closest voices are merged while closer than the threshold plus
    SIZE_TERM / (windows of the smaller group) and not a jump (above JUMP_FLOOR and JUMP times the
    largest distance merged before), or until the bounds are met.
    The distance between two groups compares their mean similarity to
    each other with the similarity inside each: 1 - mean(a.b) / sqrt(mean within A * mean within
    B), the within-group means shrunk towards PRIOR_WITHIN for small groups, so that two halves of
    one voice come out near 0 whatever the number of windows."""
    n = len(embeddings)
    if n == 0:
        return np.zeros(0, dtype=int)
    unit = _units(np.asarray(embeddings, dtype=np.float64))
    if n > MAX_CLUSTERED:  # an even sample is clustered, the rest join the nearest voice
        sample = np.linspace(0, n - 1, MAX_CLUSTERED).round().astype(int)
        labels = cluster(unit[sample], bounds, None if initial is None else initial[sample])
        centroids = np.array([_unit(unit[sample][labels == k].mean(axis=0)) for k in range(labels.max() + 1)])
        return np.argmax(unit @ centroids.T, axis=1)
    if initial is None:
        initial = _first_groups(unit)
    low = min(bounds.count or bounds.minimum or 1, n)
    high = min(bounds.count or bounds.maximum or n, n)
    if len(np.unique(initial)) < low:  # fewer groups than speakers asked for: start from the windows
        initial = np.arange(n)
    groups = np.unique(initial, return_inverse=True)[1].reshape(-1)
    k = int(groups.max()) + 1
    sums = np.zeros((k, unit.shape[1]))
    np.add.at(sums, groups, unit)
    sizes = np.bincount(groups, minlength=k).astype(float)
    dots = sums @ sums.T  # dots[a, b]: sum of the similarities between the windows of a and of b
    alive = np.ones(k, dtype=bool)
    merged: float | None = None  # the largest distance merged so far (groups compared)

    def merge(a: int, b: int) -> None:
        dots[a] += dots[b]
        dots[:, a] += dots[:, b]
        sums[a] += sums[b]
        sizes[a] += sizes[b]
        alive[b] = False
        groups[groups == b] = a

    while alive.sum() > low:
        live = np.flatnonzero(alive)
        small = live[sizes[live] < MIN_WINDOWS]
        if len(small) and len(live) > max(low, 1):
            b = int(small[np.argmin(sizes[small])])
            others = live[live != b]
            merge(int(others[np.argmax(dots[b, others] / sizes[others])]), b)
            continue
        distance = _group_distance(dots[np.ix_(live, live)], sizes[live])
        i, j = np.unravel_index(int(np.argmin(distance)), distance.shape)
        d = float(distance[i, j])
        limit = bounds.threshold + SIZE_TERM / min(sizes[live[i]], sizes[live[j]])
        jump = merged is not None and d > JUMP_FLOOR and d > JUMP * merged
        if (d > limit or jump) and alive.sum() <= high:
            break
        merged = d if merged is None else max(merged, d)
        merge(int(live[i]), int(live[j]))
    return np.unique(groups, return_inverse=True)[1].reshape(-1)


def _first_groups(unit: np.ndarray) -> np.ndarray:
    """Average-linkage clusters of the embeddings at INITIAL_DISTANCE (cosine)."""
    if len(unit) == 1:
        return np.zeros(1, dtype=int)
    from scipy.cluster.hierarchy import fcluster, linkage

    return fcluster(linkage(unit, "average", metric="cosine"), INITIAL_DISTANCE, "distance") - 1


def _group_distance(dots: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """1 - between-group mean similarity / sqrt(within A * within B), diagonal infinite."""
    pairs = np.maximum(sizes * (sizes - 1), 1)
    within = (np.diag(dots) - sizes) / pairs  # mean similarity of distinct windows of one group
    within = ((sizes - 1) * within + PRIOR_WEIGHT * PRIOR_WITHIN) / (sizes - 1 + PRIOR_WEIGHT)
    within = np.clip(within, 1e-3, None)
    distance = 1 - dots / np.outer(sizes, sizes) / np.sqrt(np.outer(within, within))
    np.fill_diagonal(distance, np.inf)
    return distance


def resegment(w: Windows, labels: np.ndarray, keep_all: bool = False) -> np.ndarray:
    """Each window to the nearest speaker centroid, then runs shorter than MIN_RUN windows inside
    a region given to their neighbours. keep_all: no speaker may vanish (the job fixed the count)."""
    speakers = sorted(set(labels.tolist()))
    centroids = np.array([_unit(w.embeddings[labels == k].mean(axis=0)) for k in speakers])
    nearest = np.array(speakers)[np.argmax(w.embeddings @ centroids.T, axis=1)]
    if keep_all and set(nearest.tolist()) != set(speakers):
        nearest = labels.copy()
    out = nearest.copy()
    for r in np.unique(w.region):
        idx = np.flatnonzero(w.region == r)
        out[idx] = _smoothed(nearest[idx], MIN_RUN)
    if keep_all and set(out.tolist()) != set(speakers):
        return nearest
    return out


def _smoothed(labels: np.ndarray, shortest: int) -> np.ndarray:
    """Runs shorter than `shortest` that sit between runs given to their longer neighbour."""
    labels = labels.copy()
    changed = True
    while changed and len(labels) > shortest:
        changed = False
        runs = _runs(labels)
        if len(runs) < 2:
            break
        for k, (a, b, _label) in enumerate(runs):
            if b - a >= shortest:
                continue
            left = runs[k - 1] if k else None
            right = runs[k + 1] if k + 1 < len(runs) else None
            neighbour = max((r for r in (left, right) if r), key=lambda r: r[1] - r[0])
            labels[a:b] = neighbour[2]
            changed = True
            break
    return labels


def _runs(labels: np.ndarray) -> list[tuple[int, int, int]]:
    runs, start = [], 0
    for i in range(1, len(labels) + 1):
        if i == len(labels) or labels[i] != labels[start]:
            runs.append((start, i, int(labels[start])))
            start = i
    return runs


def _turns(w: Windows, labels: np.ndarray, regions: list[tuple[float, float]]) -> list[Turn]:
    """Turns over the regions: a change of speaker between two windows is placed halfway between
    their centres; a region without windows (too short) takes the nearest window's speaker."""
    order = {}
    for label in labels:
        order.setdefault(int(label), len(order))
    centres = (w.starts + w.ends) / 2
    turns: list[Turn] = []
    for r, (start, end) in enumerate(regions):
        idx = np.flatnonzero(w.region == r)
        if len(idx) == 0:
            nearest = int(np.argmin(np.abs(centres - (start + end) / 2)))
            pieces = [(start, end, order[int(labels[nearest])])]
        else:
            pieces, at = [], start
            for _a, b, label in _runs(labels[idx]):
                stop = end if b == len(idx) else (centres[idx[b - 1]] + centres[idx[b]]) / 2
                pieces.append((at, stop, order[label]))
                at = stop
        for a, b, speaker in pieces:
            if turns and turns[-1].speaker == speaker and a - turns[-1].end < 0.5:
                turns[-1] = Turn(turns[-1].start, float(b), speaker)
            else:
                turns.append(Turn(float(a), float(b), speaker))
    return turns


def speaker_at(turns: list[Turn], start: float, end: float) -> int:
    """The speaker whose turn overlaps [start, end] most, or the nearest turn's."""
    if not turns:
        return 0
    best = max(turns, key=lambda t: min(end, t.end) - max(start, t.start))
    if min(end, best.end) - max(start, best.start) > 0:
        return best.speaker
    middle = (start + end) / 2
    return min(turns, key=lambda t: min(abs(middle - t.start), abs(middle - t.end))).speaker


def _unit(v: np.ndarray) -> np.ndarray:
    return v / (np.linalg.norm(v) + 1e-12)


def _units(m: np.ndarray) -> np.ndarray:
    return m / (np.linalg.norm(m, axis=1, keepdims=True) + 1e-12)
