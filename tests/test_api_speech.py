"""Speech intelligence through the service: speakers, language identification jobs, engines,
long files."""
from __future__ import annotations

import json

import pytest

from .audio import SENTENCES, dialogue, repeated, speak
from .service import peak_memory, submit, until_status, wait_for_job

pytestmark = pytest.mark.system

TERMINAL = ("COMPLETED", "FAILED", "STOPPED")


def finished(client, path, **options) -> tuple[dict, dict]:
    job = submit(client, path, json.dumps(options) if options else None)
    job = wait_for_job(client, job["id"], until_status(*TERMINAL), timeout=600)
    assert job["status"] == "COMPLETED", job["failure_reason"]
    return job, client.get(f"/v1/jobs/{job['id']}/result").json()


def test_a_dialogue_comes_back_with_its_speakers(service, tmp_path):
    turns = dialogue(tmp_path / "dialogue.wav", 2)
    with service.client() as client:
        job, result = finished(client, tmp_path / "dialogue.wav")
    assert job["speakers"] == 2 and result["speakers"] == 2
    assert job["channels"][0]["channel"] == 0 and job["channels"][0]["speech"] > 10
    assert [s["speaker"] for s in result["segments"]][:4] == [t[2] for t in turns][:4]
    with service.client() as client:
        url = f"/v1/jobs/{job['id']}/result"
        vtt = client.get(url, params={"format": "vtt"})
        assert vtt.headers["content-type"].startswith("text/vtt")
        assert vtt.text.startswith("WEBVTT") and "<v Speaker 1>" in vtt.text
        srt = client.get(url, params={"format": "srt"}).text
        assert srt.startswith("1\n00:00:00,") and " --> " in srt
        assert client.get(url, params={"format": "csv"}).text.splitlines()[0].startswith("channel,speaker")
        assert "Speaker 0: Hello there" in client.get(url, params={"format": "txt"}).text
        assert client.get(url, params={"format": "docx"}).status_code == 422


def test_a_language_identification_job_stops_after_identifying(service, tmp_path):
    spanish = speak("Buenos días, me llamo Carlos y vivo en Madrid. Hoy hace mucho calor en la ciudad.",
                    tmp_path / "es.wav", "es")
    with service.client() as client:
        job, result = finished(client, spanish, task="language_identification")
    assert job["options"]["task"] == "LANGUAGE_IDENTIFICATION"
    assert job["language"] == "es" and result["language"] == "es" and result["segments"] == []
    assert result["language_confidences"][0]["language"] == "es"
    assert [h["event"] for h in job["history"]] == ["created", "started", "diarized", "completed"]


def test_openai_whisper_runs_the_same_weights(service, speech):
    path, text = speech
    with service.client() as client:
        job, result = finished(client, path, engine="openai-whisper", language="en")
    assert job["options"]["engine"] == "openai-whisper"
    hypothesis = " ".join(s["text"] for s in result["segments"]).lower()
    assert "lazy dog" in hypothesis and "sun comes up" in hypothesis
    assert all(w["start"] <= w["end"] for s in result["segments"] for w in s["words"])


def test_a_long_file_completes_with_bounded_memory(service, tmp_path):
    minute = speak(" ".join(SENTENCES * 2), tmp_path / "minute.wav")
    long = repeated(tmp_path / "long.wav", minute, 20)  # about 20 minutes
    with service.client() as client:
        job, result = finished(client, long, model="tiny.en")
    assert job["media"]["duration"] > 15 * 60
    assert result["segments"][-1]["end"] > 15 * 60
    assert peak_memory(service.processes["inference"].pid) < 1.5 * 1024**3
