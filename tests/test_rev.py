"""The Rev AI facades end to end, driven by Rev's own Python SDK (rev_ai), plus the status codes
of the raw contract: real broker, real workers, real Whisper model."""
from __future__ import annotations

import http.server
import re
import threading
import time
from functools import partial

import pytest
from requests import HTTPError
from rev_ai import apiclient
from rev_ai.language_identification_client import LanguageIdentificationClient
from rev_ai.models import CaptionType, CustomerUrlData, CustomVocabulary, JobStatus

from diarist.api.rev import callback_body

from .service import KEY
from .test_api_jobs import wer
from .test_openapi import conforms

pytestmark = pytest.mark.system

MEDIA_AUTHORIZATION = "Bearer media-secret"
UNREACHABLE = "http://127.0.0.1:1/speech.wav"
REV_JSON = "application/vnd.rev.transcript.v1.0+json"
ERRORS = "https://www.rev.ai/api/v1/errors/"


class PrivateFiles(http.server.SimpleHTTPRequestHandler):
    """Serves files only to requests that bring the media token, as a private bucket would."""

    def do_GET(self) -> None:
        if self.headers.get("Authorization") != MEDIA_AUTHORIZATION:
            self.send_error(401)
            return
        super().do_GET()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def media_url(speech):
    path, _ = speech
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(PrivateFiles, directory=str(path.parent)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{path.name}"
    server.shutdown()


@pytest.fixture(scope="module")
def speech_to_text(service) -> apiclient.RevAiAPIClient:
    return apiclient.RevAiAPIClient(KEY, url=service.url)


@pytest.fixture(scope="module")
def language_id(service) -> LanguageIdentificationClient:
    return LanguageIdentificationClient(KEY, url=service.url)


def finished(client, job_id: str, timeout: float = 180):
    deadline = time.monotonic() + timeout
    while (job := client.get_job_details(job_id)).status == JobStatus.IN_PROGRESS:
        assert time.monotonic() < deadline, f"job {job_id} still in progress after {timeout} s"
        time.sleep(0.3)
    return job


@pytest.fixture(scope="module")
def transcribed(speech_to_text, speech, media_url):
    """Two finished speech-to-text jobs of the same speech: uploaded, and fetched from a private URL."""
    uploaded = speech_to_text.submit_job_local_file(
        str(speech[0]), metadata="upload", custom_vocabularies=[CustomVocabulary(["Kafka"])],
        delete_after_seconds=3600)
    fetched = speech_to_text.submit_job_url(
        source_config=CustomerUrlData(media_url, {"Authorization": MEDIA_AUTHORIZATION}), metadata="url",
        language="en", skip_diarization=True)
    return [finished(speech_to_text, job.id) for job in (uploaded, fetched)]


@pytest.fixture(scope="module")
def identified(language_id, speech, media_url):
    """Two finished language identification jobs of English speech: uploaded, and fetched from a URL."""
    uploaded = language_id.submit_job_local_file(str(speech[0]), metadata="upload")
    fetched = language_id.submit_job_url(
        None, source_config=CustomerUrlData(media_url, {"Authorization": MEDIA_AUTHORIZATION}), metadata="url")
    return [finished(language_id, job.id) for job in (uploaded, fetched)]


def test_speech_is_transcribed_from_uploads_and_urls(speech_to_text, transcribed):
    uploaded, fetched = transcribed
    for job, metadata in ((uploaded, "upload"), (fetched, "url")):
        assert job.status == JobStatus.TRANSCRIBED, job.failure_detail
        assert job.name == "speech.wav" and job.metadata == metadata and job.language == "en"
        assert job.duration_seconds > 5
        assert job.created_on.endswith("Z") and job.completed_on >= job.created_on
    assert uploaded.delete_after_seconds == 3600 and uploaded.skip_diarization is False
    assert fetched.skip_diarization is True


def test_the_transcript_as_object_text_and_json(speech_to_text, transcribed, speech):
    _, text = speech
    for job in transcribed:
        transcript = speech_to_text.get_transcript_object(job.id)
        words = [e for m in transcript.monologues for e in m.elements if e.type_ == "text"]
        assert wer(text, " ".join(w.value for w in words)) <= 0.15
        assert all(a.timestamp <= b.timestamp and 0 <= a.confidence <= 1 for a, b in zip(words, words[1:]))
        assert [m.speaker for m in transcript.monologues] == [0]
        raw = speech_to_text.get_transcript_json(job.id)["monologues"][0]["elements"]
        assert [e["value"] for e in raw] == [e.value for e in transcript.monologues[0].elements]
        [line] = speech_to_text.get_transcript_text(job.id).splitlines()
        spoken = re.fullmatch(r"Speaker 0    00:00:00    (.+)", line)
        assert spoken and wer(text, spoken[1]) <= 0.15


def test_captions_are_srt_unless_vtt_is_asked_for(speech_to_text, transcribed):
    job = transcribed[0]
    srt = speech_to_text.get_captions(job.id)
    assert re.match(r"1\n00:00:0\d,\d{3} --> 00:00:0\d,\d{3}\n\w", srt) and "Speaker" not in srt
    vtt = speech_to_text.get_captions(job.id, CaptionType.VTT)
    assert re.match(r"WEBVTT\n\n00:00:0\d\.\d{3} --> 00:00:0\d\.\d{3}\n<v Speaker 0>\w", vtt)


def test_job_lists_are_newest_first_and_page_by_starting_after(speech_to_text, language_id, transcribed, identified):
    uploaded, fetched = transcribed
    ids = [job.id for job in speech_to_text.get_list_of_jobs()]
    assert ids.index(fetched.id) < ids.index(uploaded.id)
    assert [job.id for job in speech_to_text.get_list_of_jobs(limit=1, starting_after=fetched.id)] == [uploaded.id]
    assert speech_to_text.get_list_of_jobs(limit=1)[0].id == ids[0]
    language_ids = [job.id for job in language_id.get_list_of_jobs()]
    assert language_ids.index(identified[1].id) < language_ids.index(identified[0].id)
    assert not set(ids) & set(language_ids)


def test_english_speech_is_identified_as_english(language_id, identified):
    for job, metadata in zip(identified, ("upload", "url")):
        assert job.status == JobStatus.COMPLETED, job.failure_detail
        assert job.metadata == metadata and job.processed_duration_seconds > 5
        result = language_id.get_result_object(job.id)
        assert result.top_language == "en" and result.language_confidences[0].language == "en"
        confidences = [c.confidence for c in result.language_confidences]
        assert confidences == sorted(confidences, reverse=True) and confidences[0] > 0.5
        assert set(language_id.get_result_json(job.id)) == {"top_language", "language_confidences"}


@pytest.mark.parametrize("api, output, done", [("speechtotext", "transcript", "transcribed"),
                                               ("languageid", "result", "completed")])
def test_an_unfinished_job_has_no_output_and_cannot_be_deleted(service, speech, api, output, done):
    client = apiclient.RevAiAPIClient(KEY, url=service.url) if api == "speechtotext" else \
        LanguageIdentificationClient(KEY, url=service.url)
    job = client.submit_job_local_file(str(speech[0]))
    assert job.status == JobStatus.IN_PROGRESS
    with service.client() as http_client:
        early = http_client.get(f"/{api}/v1/jobs/{job.id}/{output}")
        assert early.status_code == 409
        assert early.json() | {"detail": None, "instance": None} == {
            "type": ERRORS + "invalid-job-state", "title": "Job is in invalid state", "status": 409,
            "allowed_values": [done], "current_value": "in_progress", "detail": None, "instance": None}
        refused = http_client.delete(f"/{api}/v1/jobs/{job.id}")
        assert refused.status_code == 409 and refused.json()["allowed_values"] == [done, "failed"]
        # Rev has no stop: a job stopped through the native API reads as failed, and can go.
        assert http_client.post(f"/v1/jobs/{job.id}/stop").status_code == 200
    stopped = client.get_job_details(job.id)
    assert stopped.status == JobStatus.FAILED and stopped.failure == "internal_processing"
    client.delete_job(job.id)
    with pytest.raises(HTTPError) as gone:
        client.get_job_details(job.id)
    assert gone.value.response.status_code == 404
    assert job.id not in {listed.id for listed in client.get_list_of_jobs()}


def test_a_finished_job_is_deleted_with_its_output(service, language_id, speech):
    job = finished(language_id, language_id.submit_job_local_file(str(speech[0])).id)
    assert job.status == JobStatus.COMPLETED
    language_id.delete_job(job.id)
    for read in (language_id.get_job_details, language_id.get_result_json):
        with pytest.raises(HTTPError) as gone:
            read(job.id)
        assert gone.value.response.status_code == 404
    with service.client() as client:
        native = client.get(f"/v1/jobs/{job.id}").json()
    # A callback may read a job that delete_after_seconds 0 deleted at once: it still tells how the job ended.
    assert native["status"] == "DELETED" and callback_body(native)["job"]["status"] == "completed"


def test_the_answers_are_what_the_openapi_document_says(service, transcribed, identified):
    problem = "application/problem+json"
    with service.client() as client:
        document = client.get("/openapi.json").json()
        for api, job in (("speechtotext", transcribed[0]), ("languageid", identified[0])):
            conforms(document, f"/{api}/v1/jobs", "get", 200, client.get(f"/{api}/v1/jobs").json())
            conforms(document, f"/{api}/v1/jobs/{{id}}", "get", 200, client.get(f"/{api}/v1/jobs/{job.id}").json())
            conforms(document, f"/{api}/v1/jobs/{{id}}", "get", 404, client.get(f"/{api}/v1/jobs/nope").json(),
                     problem)
            conforms(document, f"/{api}/v1/jobs", "post", 400, client.post(f"/{api}/v1/jobs", json={}).json(),
                     problem)
        result = client.get(f"/languageid/v1/jobs/{identified[0].id}/result").json()
        conforms(document, "/languageid/v1/jobs/{id}/result", "get", 200, result)
        transcript = client.get(f"/speechtotext/v1/jobs/{transcribed[0].id}/transcript").json()
        conforms(document, "/speechtotext/v1/jobs/{id}/transcript", "get", 200, transcript, REV_JSON)


def test_a_job_is_seen_only_through_its_own_api(service, identified):
    with service.client() as client:
        assert client.get(f"/speechtotext/v1/jobs/{identified[0].id}").status_code == 404
        assert client.get(f"/languageid/v1/jobs/{identified[0].id}").status_code == 200


def test_the_callback_body_is_the_rev_job(service, transcribed, identified):
    with service.client() as client:
        for api, job in (("speechtotext", transcribed[0]), ("languageid", identified[0])):
            native = client.get(f"/v1/jobs/{job.id}").json()
            assert callback_body(native) == {"job": client.get(f"/{api}/v1/jobs/{job.id}").json()}
            assert callback_body(native)["job"]["type"] == ("async" if api == "speechtotext" else "language_id")


def test_without_a_key_the_answer_is_401(service):
    with service.client(None) as client:
        for path in ("/languageid/v1/jobs", "/speechtotext/v1/jobs", "/speechtotext/v1/jobs/x/transcript"):
            assert client.get(path).status_code == 401


def test_unknown_jobs_answer_404(service):
    with service.client() as client:
        for response in (client.get("/languageid/v1/jobs/nope"), client.delete("/languageid/v1/jobs/nope"),
                         client.get("/languageid/v1/jobs/nope/result"), client.get("/speechtotext/v1/jobs/nope"),
                         client.delete("/speechtotext/v1/jobs/nope"),
                         client.get("/speechtotext/v1/jobs/nope/transcript"),
                         client.get("/speechtotext/v1/jobs/nope/captions")):
            assert response.status_code == 404
            assert response.json()["type"] == ERRORS + "job-not-found"
            assert response.json()["title"] == "could not find job"


@pytest.mark.parametrize("api, request_kwargs, parameter", [
    ("speechtotext", {"json": {}}, "media_url"),
    ("speechtotext", {"json": {"media_url": UNREACHABLE, "source_config": {"url": UNREACHABLE}}}, "source_config"),
    ("speechtotext", {"json": {"source_config": {"link": UNREACHABLE}}}, "source_config"),
    ("speechtotext", {"json": {"media_url": UNREACHABLE, "skip_punctuation": True}}, "skip_punctuation"),
    ("speechtotext", {"json": {"media_url": UNREACHABLE, "custom_vocabularies": ["Kafka"]}}, "custom_vocabularies"),
    ("speechtotext", {"json": {"media_url": UNREACHABLE, "skip_diarization": "yes"}}, "skip_diarization"),
    ("speechtotext", {"json": {"media_url": UNREACHABLE, "callback_url": "https://example.com/cb",
                               "notification_config": {"url": "https://example.com/cb"}}}, "notification_config"),
    ("languageid", {"json": {"media_url": UNREACHABLE, "language": "en"}}, "language"),
    ("languageid", {"files": {"audio": ("a.wav", b"RIFF")}}, "media"),
    ("languageid", {"files": {"media": ("a.wav", b"RIFF")}, "data": {"options": "{not json"}}, "options"),
    ("speechtotext", {"files": {"media": ("a.wav", b"RIFF")}, "data": {"options": '{"media_url": "x"}'}},
     "media_url"),
])
def test_invalid_parameters_are_named_in_a_400(service, api, request_kwargs, parameter):
    with service.client() as client:
        response = client.post(f"/{api}/v1/jobs", **request_kwargs)
    assert response.status_code == 400, response.text
    assert response.json()["type"] == ERRORS + "invalid-parameters"
    assert parameter in response.json()["parameters"]


@pytest.mark.parametrize("body, detail", [
    ({"media_url": "ftp://example.com/a.wav"}, "http or https"),
    ({"media_url": UNREACHABLE, "speakers_count": 0}, "speakers_count"),
    ({"media_url": UNREACHABLE, "language": "English!"}, "ISO 639"),
    ({"media_url": UNREACHABLE, "delete_after_seconds": -1}, "delete_after_seconds"),
])
def test_invalid_values_answer_400(service, body, detail):
    with service.client() as client:
        response = client.post("/speechtotext/v1/jobs", json=body)
    assert response.status_code == 400 and detail in response.json()["detail"]


def test_auth_headers_reach_the_media_host(service, media_url):
    with service.client() as client:
        response = client.post("/speechtotext/v1/jobs", json={"media_url": media_url})
    assert response.status_code == 400 and "HTTP status 401" in response.json()["detail"]


def test_other_bodies_are_refused(service):
    with service.client() as client:
        assert client.post("/speechtotext/v1/jobs", content=b"hi", headers={"content-type": "text/plain"}
                           ).status_code == 415
        assert client.post("/languageid/v1/jobs", content=b"{", headers={"content-type": "application/json"}
                           ).status_code == 400


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 1001}, {"limit": "ten"}, {"starting_after": "nope"}])
def test_list_parameters_are_checked(service, params):
    with service.client() as client:
        response = client.get("/speechtotext/v1/jobs", params=params)
    assert response.status_code == 400 and set(params) <= set(response.json()["parameters"])


@pytest.mark.parametrize("output, accept, media_type", [
    ("transcript", "", REV_JSON),
    ("transcript", "*/*", REV_JSON),
    ("transcript", REV_JSON, REV_JSON),
    ("transcript", "text/plain", "text/plain; charset=utf-8"),
    ("transcript", "text/*", "text/plain; charset=utf-8"),
    ("transcript", f"text/plain;q=0.5, {REV_JSON}", REV_JSON),
    ("transcript", "application/json", None),
    ("transcript", "text/plain;q=0", None),
    ("captions", "*/*", "application/x-subrip; charset=utf-8"),
    ("captions", "text/vtt", "text/vtt; charset=utf-8"),
    ("captions", "text/plain", None),
])
def test_the_accept_header_picks_the_format(service, transcribed, output, accept, media_type):
    with service.client() as client:
        response = client.get(f"/speechtotext/v1/jobs/{transcribed[0].id}/{output}", headers={"Accept": accept})
    if media_type is None:
        assert response.status_code == 406
    else:
        assert response.status_code == 200 and response.headers["content-type"] == media_type
