"""The DeepAffects async facade end to end, driven by DeepAffects' own Python SDK where it reaches:
real broker, real workers, real Whisper model."""
from __future__ import annotations

import base64
import time
import uuid

import deepaffects
import pytest
from deepaffects.rest import ApiException

from diarist.api import deepaffects as facade

from .audio import dialogue
from .service import KEY
from .test_api_jobs import wer

pytestmark = pytest.mark.system

STATUS = "/transaction/generic/api/v1/async/status"
ASR = "/audio/generic/api/v1/async/asr"
WEBHOOK = "http://127.0.0.1:9/webhook"  # told of nothing: these tests poll the status


@pytest.fixture(scope="module")
def sdk(service) -> deepaffects.ApiClient:
    """The SDK's client, with this service's key, pointed at this service."""
    configuration = deepaffects.Configuration()  # the SDK's one configuration
    before = configuration.host, dict(configuration.api_key)
    configuration.host, configuration.api_key["apikey"] = service.url, KEY
    yield deepaffects.ApiClient()
    configuration.host, configuration.api_key = before


def audio(path, **fields) -> deepaffects.DiarizeAudio:
    # DiarizeAudio.from_file reads the codec as MediaInfo no longer names it; build it as from_file would.
    return deepaffects.DiarizeAudio(encoding="Wave", sample_rate=22050, language_code="en-US",
                                    content=base64.b64encode(path.read_bytes()).decode(), **fields)


def until_finished(client, request_id: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(STATUS, params={"request_id": request_id}).json()
        if body["status"] != "Running":
            return body
        time.sleep(0.5)
    raise TimeoutError(f"request {request_id} is still running after {timeout} s")


@pytest.fixture(scope="module")
def diarized(service, sdk, tmp_path_factory) -> tuple[str, list, dict, dict]:
    """A two-voice dialogue diarized through the SDK: request_id, turns, the first status, the last."""
    path = tmp_path_factory.mktemp("deepaffects") / "dialogue.wav"
    turns = dialogue(path, 2)
    request_id = f"dialogue-{uuid.uuid4().hex[:8]}"
    accepted = deepaffects.DiarizeApiV2(sdk).async_diarize_audio(audio(path, speakers=-1), WEBHOOK,
                                                                 request_id=request_id)
    assert (accepted.request_id, accepted.api) == (request_id, "diarize")
    with service.client() as client:
        first = client.get(STATUS, params={"request_id": request_id}).json()
        return request_id, turns, first, until_finished(client, request_id)


@pytest.fixture(scope="module")
def transcribed(service, speech) -> tuple[str, dict]:
    """The speech fixture transcribed with speakers through the Speech-to-Text API, keyed by ?apikey=."""
    path, _ = speech
    with service.client(None) as client:
        response = client.post(ASR, params={"apikey": KEY, "webhook": WEBHOOK}, json={
            "content": base64.b64encode(path.read_bytes()).decode(), "encoding": "Wave", "sampleRate": 22050,
            "languageCode": "en-US", "enableSpeakerDiarization": True})
        assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["api"] == "asr" and uuid.UUID(accepted["request_id"])  # made up when none was sent
    with service.client() as client:
        return accepted["request_id"], until_finished(client, accepted["request_id"])


def test_a_diarization_runs_then_completes_with_the_speakers_segments(diarized):
    request_id, turns, first, last = diarized
    assert first == {"response": {"request_id": request_id, "response": None}, "status": "Running"}
    assert last["status"] == "Completed" and last["response"]["request_id"] == request_id
    output = last["response"]["response"]
    assert output["num_speakers"] == 2
    assert [s["speaker_id"] for s in output["segments"]][:4] == [str(t[2]) for t in turns][:4]
    assert all(0 <= s["start"] < s["end"] for s in output["segments"])


def test_a_transcription_has_its_words_with_speakers(transcribed, speech):
    request_id, last = transcribed
    assert last["status"] == "Completed" and last["response"]["request_id"] == request_id
    output = last["response"]["response"]
    assert wer(speech[1], output["transcript"]) <= 0.15, output["transcript"]
    assert output["transcript"] == " ".join(w["word"] for w in output["words"])
    assert output["num_speakers"] == 1 and {w["speaker_id"] for w in output["words"]} == {"0"}
    assert all(0 <= w["start"] <= w["end"] and 0 <= w["confidence"] <= 1 for w in output["words"])
    assert 0 < output["confidence"] <= 1


def test_the_webhook_body_is_the_status_response(service, transcribed):
    request_id, last = transcribed
    job_id = facade.job_id(request_id)
    with service.client() as client:
        job, result = client.get(f"/v1/jobs/{job_id}").json(), client.get(f"/v1/jobs/{job_id}/result").json()
    assert job["options"]["api"] == "deepaffects" and job["options"]["callback_urls"] == [WEBHOOK]
    assert facade.callback_body(job, result) == last["response"]


def test_a_request_id_names_one_request(service, diarized, speech):
    request_id = diarized[0]
    with service.client() as client:
        again = client.post(ASR, params={"request_id": request_id},
                            json={"content": base64.b64encode(speech[0].read_bytes()).decode()})
    assert again.status_code == 409 and request_id in again.json()["detail"]


def test_unknown_or_missing_request_ids(service):
    with service.client() as client:
        unknown = client.get(STATUS, params={"request_id": "never-sent"})
        assert unknown.status_code == 404 and "never-sent" in unknown.json()["detail"]
        assert client.get(STATUS).status_code == 400


@pytest.mark.parametrize("body, detail", [
    ({"content": "not base64!", "encoding": "Wave"}, "not valid base64"),
    ({"content": ""}, "empty"),
    ({"encoding": "Wave"}, "exactly one of content"),
    ({"content": "UklGRg==", "url": "https://example.com/a.wav"}, "exactly one of content"),
    ({"content": "UklGRg==", "languageCode": "English!"}, "ISO 639"),
    ({"content": "UklGRg==", "enableSpeakerDiarization": "yes"}, "diarization"),
    ({"url": "ftp://example.com/a.wav"}, "http or https"),
])
def test_malformed_submissions_answer_400(service, body, detail):
    with service.client() as client:
        response = client.post(ASR, json=body)
    assert response.status_code == 400, response.text
    assert detail in response.json()["detail"]


def test_the_sdk_sees_a_bad_request(sdk):
    bad = deepaffects.DiarizeAudio(encoding="Wave", sample_rate=8000, content="%%%", speakers=0)
    with pytest.raises(ApiException) as raised:
        deepaffects.DiarizeApi(sdk).async_diarize_audio(bad, WEBHOOK)
    assert raised.value.status == 400


def test_the_apikey_parameter_is_a_key_on_these_paths_only(service):
    with service.client(None) as client:
        for params in ({}, {"apikey": "not-the-key"}):
            for response in (client.get(STATUS, params={"request_id": "x", **params}),
                             client.post(ASR, params=params, json={})):
                assert response.status_code == 401
                assert response.headers["www-authenticate"] == "Bearer"
        assert client.get(STATUS, params={"request_id": "x", "apikey": KEY}).status_code == 404
        assert client.get("/v1/jobs", params={"apikey": KEY}).status_code == 401
    with service.client() as client:  # a Bearer key does as well here
        assert client.get(STATUS, params={"request_id": "x"}).status_code == 404
