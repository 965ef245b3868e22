"""The status pages' sign-in and its protection against other sites (api/session.py, api/auth.py,
api/ui.py), over the job service of the unit tier: the session cookie's flags, where the cookie is
taken and where not, the Origin / Sec-Fetch-Site checks and the CSRF token on changes, sign-out,
the pages' redirects and assets, and media ranges."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.testclient import TestClient

from diarist.api import events, forwarding, native, session, ui
from diarist.api.auth import BearerAuth
from diarist.api.problems import EXCEPTION_HANDLERS

from .fakes import job_service

pytestmark = pytest.mark.unit

KEY = "the-key"
OTHER_KEY = "another-key"
ORIGIN = "http://testserver"  # TestClient's own
SAME = {"Origin": ORIGIN, "Sec-Fetch-Site": "same-origin"}
WAV = b"RIFF" + bytes(range(256)) * 4


@pytest.fixture
def jobs(tmp_path):
    return job_service(tmp_path)


@pytest.fixture
def client(jobs):
    surfaces = (native.surface, events.surface, ui.surface, forwarding.surface)
    app = Starlette(routes=[route for surface in surfaces for route in surface.routes],
                    middleware=[Middleware(BearerAuth, keys=frozenset({KEY, OTHER_KEY}), surfaces=surfaces,
                                           public_routes=[])],
                    exception_handlers=EXCEPTION_HANDLERS)
    app.state.jobs = jobs
    app.state.advertised_url = ORIGIN
    app.state.worker = SimpleNamespace(settings=SimpleNamespace(api_keys=lambda: frozenset({KEY, OTHER_KEY})))
    with TestClient(app, follow_redirects=False) as client:
        yield client


def signed_in(client: TestClient, key: str = KEY) -> TestClient:
    response = client.post("/ui/login", data={"key": key, "next": "/ui"}, headers={"Origin": ORIGIN})
    assert response.status_code == 303, response.text
    return client


def queued_job(client: TestClient) -> str:
    response = client.post("/v1/jobs", files={"media": ("a.wav", WAV, "audio/wav")},
                           headers={"Authorization": f"Bearer {KEY}"})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def test_signing_in_sets_an_http_only_same_site_strict_cookie_for_the_whole_service(client):
    response = client.post("/ui/login", data={"key": KEY, "next": "/ui/jobs/abc"}, headers={"Origin": ORIGIN})
    assert response.status_code == 303 and response.headers["location"] == "/ui/jobs/abc"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{session.COOKIE}={KEY};")
    flags = {part.strip().split("=")[0].lower(): part.strip() for part in cookie.split(";")[1:]}
    assert "httponly" in flags and flags["samesite"].lower() == "samesite=strict" and flags["path"] == "Path=/"
    assert flags["max-age"] == f"Max-Age={session.MAX_AGE}"
    assert "secure" not in flags  # plain http here; https (or X-Forwarded-Proto: https) adds it
    secure = client.post("/ui/login", data={"key": KEY}, headers={"Origin": ORIGIN, "X-Forwarded-Proto": "https"})
    assert "secure" in secure.headers["set-cookie"].lower()


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/ui", "/v1/jobs", "javascript:alert(1)", ""])
def test_signing_in_goes_on_only_to_a_page_of_the_ui(client, target):
    response = client.post("/ui/login", data={"key": KEY, "next": target}, headers={"Origin": ORIGIN})
    assert response.headers["location"] == "/ui"


def test_a_wrong_key_gets_the_form_again_and_no_cookie(client):
    response = client.post("/ui/login", data={"key": "nope", "next": "/ui"}, headers={"Origin": ORIGIN})
    assert response.status_code == 401 and "set-cookie" not in response.headers
    assert "That API key is not valid." in response.text and 'name="key"' in response.text


@pytest.mark.parametrize("headers", [{"Origin": "http://evil.example"}, {"Origin": "null"},
                                     {"Sec-Fetch-Site": "cross-site"}, {}])
def test_no_other_site_signs_a_browser_in(client, headers):
    response = client.post("/ui/login", data={"key": KEY}, headers=headers)
    assert response.status_code == 403 and "set-cookie" not in response.headers


def test_pages_send_a_browser_without_a_session_to_the_form_and_back(client):
    response = client.get("/ui/jobs/abc", params={"x": "1"})
    assert response.status_code == 303 and response.headers["location"] == "/ui/login?next=%2Fui%2Fjobs%2Fabc%3Fx%3D1"
    form = client.get(response.headers["location"])
    assert form.status_code == 200 and 'value="/ui/jobs/abc?x=1"' in form.text
    client.cookies.set(session.COOKIE, "not-a-key")
    assert client.get("/ui").status_code == 303


def test_a_signed_in_page_carries_its_csrf_token_and_a_strict_policy(client):
    signed_in(client)
    page = client.get("/ui", headers={"Sec-Fetch-Site": "same-origin"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert f'<meta name="csrf-token" content="{session.csrf_token(KEY)}">' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    job = client.get("/ui/jobs/some-id")
    assert job.status_code == 200 and 'data-job-id="some-id"' in job.text
    assert "&quot;srt&quot;" in job.text  # the download formats, for the page's script


def test_a_page_asked_for_by_another_site_is_not_signed_in(client):
    signed_in(client)
    assert client.get("/ui", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 303


def test_the_native_api_takes_the_cookie_for_the_pages_own_reads(client):
    signed_in(client)
    assert client.get("/v1/jobs").status_code == 200  # no Sec-Fetch-Site: a typed address, an old browser
    assert client.get("/v1/jobs", headers={"Sec-Fetch-Site": "same-origin"}).status_code == 200
    for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"},
                    {"Origin": "http://evil.example"}):
        refused = client.get("/v1/jobs", headers=headers)
        assert refused.status_code == 403 and refused.headers["content-type"] == "application/problem+json"


def test_changes_made_with_the_cookie_need_the_same_origin_and_the_csrf_token(client, jobs):
    job_id = queued_job(client)
    signed_in(client)
    token = session.csrf_token(KEY)
    assert client.post(f"/v1/jobs/{job_id}/stop", headers=SAME).status_code == 403  # no token
    assert client.post(f"/v1/jobs/{job_id}/stop", headers={**SAME, "X-CSRF-Token": "0" * 64}).status_code == 403
    assert client.post(f"/v1/jobs/{job_id}/stop",
                       headers={**SAME, "X-CSRF-Token": session.csrf_token(OTHER_KEY)}).status_code == 403
    for headers in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}, {}):
        assert client.post(f"/v1/jobs/{job_id}/stop", headers={**headers, "X-CSRF-Token": token}).status_code == 403
    assert jobs.local_read(job_id)["status"] == "QUEUED"
    stopped = client.post(f"/v1/jobs/{job_id}/stop", headers={"Origin": ORIGIN, "X-CSRF-Token": token})
    assert stopped.status_code == 200 and stopped.json()["status"] == "STOPPED"
    deleted = client.delete(f"/v1/jobs/{job_id}", headers={"Sec-Fetch-Site": "same-origin", "X-CSRF-Token": token})
    assert deleted.status_code == 200 and deleted.json()["status"] == "DELETED"


def test_the_cookie_is_no_key_where_the_surface_does_not_take_it(client):
    signed_in(client)
    peer_call = client.post("/internal/jobs/read", json={"job_id": "x"},
                            headers={**SAME, "X-CSRF-Token": session.csrf_token(KEY)})
    assert peer_call.status_code == 401


def test_a_key_in_the_header_wins_over_the_cookie(client):
    signed_in(client)
    assert client.get("/v1/jobs", headers={"Authorization": "Bearer wrong"}).status_code == 401
    # a Bearer request is not a cookie request: no Origin or token asked of it
    job_id = queued_job(client)
    stopped = client.post(f"/v1/jobs/{job_id}/stop",
                          headers={"Authorization": f"Bearer {KEY}", "Origin": "http://evil.example"})
    assert stopped.status_code == 200


def test_an_unknown_cookie_is_no_session(client):
    client.cookies.set(session.COOKIE, "not-a-key")
    assert client.get("/v1/jobs").status_code == 401
    client.cookies.clear()
    # any byte may come in a cookie
    assert client.get("/v1/jobs", headers={b"cookie": f"{session.COOKIE}=ключ".encode()}).status_code == 401


def test_signing_out_clears_the_cookie_and_needs_the_token(client):
    signed_in(client)
    refused = client.post("/ui/logout", data={"csrf_token": "0" * 64}, headers={"Origin": ORIGIN})
    assert refused.status_code == 403
    response = client.post("/ui/logout", data={"csrf_token": session.csrf_token(KEY)}, headers={"Origin": ORIGIN})
    assert response.status_code == 303 and response.headers["location"] == "/ui/login"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f'{session.COOKIE}="";') and "Max-Age=0" in cookie and "httponly" in cookie.lower()
    assert client.get("/v1/jobs").status_code == 401
    assert client.get("/ui").status_code == 303


def test_the_assets_are_served_and_nothing_else_of_the_package(client):
    script = client.get("/ui/assets/ui.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert client.get("/ui/assets/ui.css").headers["content-type"].startswith("text/css")
    for name in ("login.html", "nope.js", "ui"):
        assert client.get(f"/ui/assets/{name}").status_code == 404, name
    for name in ("..%2Fui.py", "%2E%2E%2Fsession.py"):  # no route takes a path with a slash in the name
        assert client.get(f"/ui/assets/{name}").status_code == 401, name


def test_the_media_is_served_in_ranges_to_a_signed_in_page(client):
    job_id = queued_job(client)
    assert client.get(f"/ui/jobs/{job_id}/media").status_code == 401
    signed_in(client)
    whole = client.get(f"/ui/jobs/{job_id}/media")
    assert whole.status_code == 200 and whole.content == WAV and whole.headers["content-type"] == "audio/wav"
    part = client.get(f"/ui/jobs/{job_id}/media", headers={"Range": "bytes=4-9"})
    assert part.status_code == 206 and part.content == WAV[4:10]
    assert part.headers["content-range"] == f"bytes 4-9/{len(WAV)}"
    assert client.get("/ui/jobs/nope/media").status_code == 404


class RemoteStore:
    """A blob store without local files (as S3): size and a ranged stream."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    async def size(self, key: str) -> int:
        if key != "k":
            raise LookupError(key)
        return len(self.data)

    async def stream(self, key: str, start: int = 0, end: int | None = None):
        chunk = self.data[start:end]
        for i in range(0, len(chunk), 7):
            yield chunk[i:i + 7]


def test_ranges_of_a_store_without_files():
    from starlette.requests import Request
    from starlette.routing import Route

    async def serve(request: Request):
        return await ui.media_response(request, RemoteStore(WAV), request.query_params["key"], "audio/wav", "a b.wav")

    with TestClient(Starlette(routes=[Route("/m", serve)], exception_handlers=EXCEPTION_HANDLERS)) as client:
        whole = client.get("/m", params={"key": "k"})
        assert whole.content == WAV and whole.headers["accept-ranges"] == "bytes"
        assert whole.headers["content-disposition"] == "inline; filename*=utf-8''a%20b.wav"
        tail = client.get("/m", params={"key": "k"}, headers={"Range": "bytes=-10"})
        assert tail.status_code == 206 and tail.content == WAV[-10:]
        assert tail.headers["content-range"] == f"bytes {len(WAV) - 10}-{len(WAV) - 1}/{len(WAV)}"
        rest = client.get("/m", params={"key": "k"}, headers={"Range": "bytes=1000-"})
        assert rest.status_code == 206 and rest.content == WAV[1000:]
        past = client.get("/m", params={"key": "k"}, headers={"Range": f"bytes={len(WAV)}-"})
        assert past.status_code == 416 and past.headers["content-range"] == f"bytes */{len(WAV)}"
        assert client.get("/m", params={"key": "gone"}).status_code == 404


@pytest.mark.parametrize(("header", "size", "expected"), [
    (None, 100, None), ("bytes=0-9", 100, (0, 9)), ("bytes=90-", 100, (90, 99)), ("bytes=90-500", 100, (90, 99)),
    ("bytes=-5", 100, (95, 99)), ("bytes=-500", 100, (0, 99)), ("bytes=5-1", 100, None),
    ("bytes=0-1,5-6", 100, None), ("items=0-1", 100, None), ("bytes=-", 100, None), (" bytes = 3 - 4 ", 100, (3, 4)),
])
def test_byte_ranges(header, size, expected):
    assert ui.byte_range(header, size) == expected


@pytest.mark.parametrize(("header", "size"), [("bytes=100-", 100), ("bytes=-0", 100), ("bytes=0-", 0)])
def test_byte_ranges_past_the_end(header, size):
    with pytest.raises(ui.RangeNotSatisfiable):
        ui.byte_range(header, size)


def test_cross_site_and_refusal_rules():
    from starlette.requests import Request

    def request(method: str, **headers: str) -> Request:
        raw = [(b"host", b"svc:8000"), *((k.lower().replace("_", "-").encode(), v.encode()) for k, v in headers.items())]
        return Request({"type": "http", "method": method, "path": "/", "headers": raw, "query_string": b""})

    token = session.csrf_token(KEY)
    assert session.cross_site(request("GET")) is None
    assert session.cross_site(request("GET", origin="http://svc:8000")) is None
    assert session.cross_site(request("GET", origin="https://SVC:8000")) is None  # a proxy may end TLS
    assert session.cross_site(request("GET", origin="http://svc:8001"))
    assert session.cross_site(request("GET", sec_fetch_site="same-site"))
    assert session.cross_site(request("GET", sec_fetch_site="none")) is None
    assert session.cross_site(request("POST"))  # a change must say where it comes from
    assert session.cross_site(request("POST", sec_fetch_site="same-origin")) is None
    assert session.refusal(request("POST", origin="http://svc:8000", x_csrf_token=token), KEY) is None
    assert session.refusal(request("POST", origin="http://svc:8000"), KEY)
    assert session.refusal(request("POST", origin="http://svc:8000"), KEY, token=token) is None
    assert session.refusal(request("PUT", origin="http://svc:8000", x_csrf_token=token), OTHER_KEY)
    assert len({session.csrf_token(k) for k in (KEY, OTHER_KEY, KEY + " ")}) == 3
    assert session.known(KEY, {KEY}) and not session.known("", {""}) and not session.known("ключ", {KEY})
