"""The fold: idempotent under replay and duplicates, refusing illegal transitions."""
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diarist.schemas import codec
from diarist.streams.jobs import lifecycle as lc

pytestmark = pytest.mark.unit

SPEC = {"filename": "a.wav", "media": {"key": "media/j", "md5": "0" * 32, "size": 1, "content_type": None},
        "options": {"tag": None, "language": None, "model": None, "callback_urls": [], "metadata": None,
                     "task": "TRANSCRIPTION", "engine": None, "diarization": True, "speakers_count": None,
                     "min_speakers": None, "max_speakers": None, "clustering_threshold": None, "hints": []}}
T0 = datetime(2026, 1, 1, tzinfo=UTC)

PAYLOADS = {
    lc.CREATED: {"spec": SPEC},
    lc.STARTED: {"worker": "w1"},
    lc.DIARIZED: {"media": {"format": "wav", "codec": "pcm_s16le", "sample_rate": 16000, "channels": 1,
                            "bit_rate": 256000, "duration": 3.0}, "speakers": 1, "speech_seconds": 2.5,
                    "channels": [{"channel": 0, "duration": 3.0, "speech": 2.5, "silence": 0.5, "redundant_of": None}]},
    lc.PROGRESS: {"percent": 50.0},
    lc.COMPLETED_EVENT: {"result": {"key": "results/j.json", "md5": "1" * 32, "size": 9},
                         "language": "en", "language_probability": 0.9},
    lc.FAILED_EVENT: {"reason": "the media could not be decoded"},
    lc.STOPPED_EVENT: {"reason": None},
    lc.RETRIED: {"spec": SPEC},
    lc.DELETED_EVENT: {},
    lc.CALLBACK_FAILED: {"url": "https://example.com/hook", "reason": "HTTP 500, 5 attempts"},
}


def ev(name, version, n=0, **extra):
    return name, {"event_id": f"{name}-{version}-{n}", "job_id": "j", "version": version,
                  "occurred_at": T0 + timedelta(seconds=version), **PAYLOADS[name], **extra}


def fold_all(events, job=None):
    for name, event in events:
        job = lc.fold(job, name, event)
    return job


def test_a_job_runs_its_course():
    job = fold_all([ev(lc.CREATED, 1), ev(lc.STARTED, 2), ev(lc.DIARIZED, 3),
                    ev(lc.PROGRESS, 3, percent=40.0), ev(lc.COMPLETED_EVENT, 4)])
    assert job["status"] == lc.COMPLETED and job["version"] == 4
    assert [t["event"] for t in job["history"]] == ["created", "started", "diarized", "completed"]
    assert job["speakers"] == 1 and job["language"] == "en" and job["progress"] == 100.0
    # The record the fold makes is a valid Avro Job.
    assert codec().decode(codec().encode("diarist.Job", job))[1]["status"] == lc.COMPLETED


def test_retry_after_failure_starts_a_new_attempt():
    job = fold_all([ev(lc.CREATED, 1), ev(lc.STARTED, 2), ev(lc.FAILED_EVENT, 3), ev(lc.RETRIED, 4)])
    assert job["status"] == lc.QUEUED and job["attempt"] == 2 and job["failure_reason"] is None


def test_illegal_transitions_say_why_and_change_nothing():
    queued = fold_all([ev(lc.CREATED, 1)])
    for name in (lc.COMPLETED_EVENT, lc.FAILED_EVENT, lc.RETRIED, lc.DELETED_EVENT, lc.DIARIZED):
        _, event = ev(name, 2)
        assert "QUEUED job cannot be" in lc.refusal(queued, name, event)
        assert lc.fold(queued, name, event) is queued
    _, late = ev(lc.STOPPED_EVENT, 1)
    assert "already taken" in lc.refusal(queued, lc.STOPPED_EVENT, late)
    assert lc.refusal(None, lc.STARTED, ev(lc.STARTED, 2)[1]) == "no such job"


def test_progress_only_moves_forward_within_its_run():
    running = fold_all([ev(lc.CREATED, 1), ev(lc.STARTED, 2), ev(lc.PROGRESS, 2, percent=60.0)])
    assert running["progress"] == 60.0
    assert lc.fold(running, *ev(lc.PROGRESS, 2, 1, percent=30.0)) is running
    assert lc.fold(running, *ev(lc.PROGRESS, 1, 1, percent=90.0)) is running


def test_racing_writers_cannot_both_take_a_version():
    started = fold_all([ev(lc.CREATED, 1), ev(lc.STARTED, 2)])
    stop = ev(lc.STOPPED_EVENT, 2)
    assert lc.fold(fold_all([ev(lc.CREATED, 1), stop]), *ev(lc.STARTED, 2))["status"] == lc.STOPPED
    assert lc.fold(started, *stop) is started
    assert not lc.applied(started, stop[1])


@st.composite
def events(draw):
    """Any sequence a job's partition can hold: any event, legal or not, racing writers
    included, where no writer names a version beyond the next one after what it could have
    read (a writer reads the job, folded from earlier offsets, before it writes)."""
    sequence, job = [], None
    for _ in range(draw(st.integers(0, 25))):
        name = draw(st.sampled_from(lc.LIFECYCLE_EVENTS))
        # Progress and callback failures belong to the version their writer read; the rest
        # make the next one.
        reach = (job["version"] if job else 0) + (name not in lc.UNVERSIONED)
        version = draw(st.integers(1, max(reach, 1)))
        extra = {"percent": draw(st.sampled_from([10.0, 50.0, 90.0]))} if name == lc.PROGRESS else {}
        sequence.append(ev(name, version, draw(st.integers(0, 1)), **extra))
        job = lc.fold(job, *sequence[-1])
    return sequence


@settings(max_examples=400)
@given(events(), st.data())
def test_replays_and_duplicates_change_nothing(sequence, data):
    expected = fold_all(sequence)
    # At-least-once delivery: a duplicate of an event arrives any time after it...
    with_duplicates = list(sequence)
    for _ in range(data.draw(st.integers(0, 10))):
        if not with_duplicates:
            break
        original = data.draw(st.integers(0, len(with_duplicates) - 1))
        at = data.draw(st.integers(original + 1, len(with_duplicates)))
        with_duplicates.insert(at, with_duplicates[original])
    assert fold_all(with_duplicates) == expected
    # ...and a restart replays everything after the last committed offset.
    replay_from = data.draw(st.integers(0, len(sequence)))
    assert fold_all(sequence + sequence[replay_from:]) == expected


@given(events())
def test_a_refused_event_leaves_the_job_untouched(sequence):
    job = None
    for name, event in sequence:
        after = lc.fold(job, name, event)
        if lc.refusal(job, name, event) is not None:
            assert after is job
        else:
            assert after is not job
        job = after


def test_a_callback_failure_is_recorded_without_a_version():
    completed = fold_all([ev(lc.CREATED, 1), ev(lc.STARTED, 2), ev(lc.COMPLETED_EVENT, 3)])
    job = lc.fold(completed, *ev(lc.CALLBACK_FAILED, 3))
    assert job["version"] == 3 and job["history"] == completed["history"]
    assert job["callback_failure_reason"] == "the callback to https://example.com/hook failed: HTTP 500, 5 attempts"
    # The first failure stays; another one, or the same one again, changes nothing.
    assert lc.fold(job, *ev(lc.CALLBACK_FAILED, 3, 1, url="https://example.org/b")) is job
    assert lc.fold(job, *ev(lc.CALLBACK_FAILED, 3)) is job
    # A deletion keeps it: the job still says why its callback failed.
    assert lc.fold(job, *ev(lc.DELETED_EVENT, 4))["callback_failure_reason"] == job["callback_failure_reason"]


def test_a_callback_failure_belongs_to_the_end_of_the_current_attempt():
    running = fold_all([ev(lc.CREATED, 1), ev(lc.STARTED, 2)])
    assert "did not end at version 2" in lc.refusal(running, *ev(lc.CALLBACK_FAILED, 2))
    failed = fold_all([ev(lc.FAILED_EVENT, 3)], running)
    retried = fold_all([ev(lc.CALLBACK_FAILED, 3), ev(lc.RETRIED, 4)], failed)
    assert retried["callback_failure_reason"] is None
    assert lc.refusal(retried, *ev(lc.CALLBACK_FAILED, 3)) == "a callback of an earlier attempt"
