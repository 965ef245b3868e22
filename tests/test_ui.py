"""The live status pages in a real browser: Playwright driving Debian's chromium (infra/setup.sh --test
installs it; `playwright install` is never run, it downloads) against the real service. Sign in,
watch jobs change on the list and on a job's page without a reload, stop, retry and delete from a
job's page, seek the player by clicking a word, and see that another site cannot use the session.

Screenshots are kept under $DIARIST_TEST_ARTIFACTS (default tests/artifacts/, ignored by git); each
test prints their paths."""
from __future__ import annotations

import http.server
import os
import re
import threading
from pathlib import Path

import pytest

from .audio import dialogue
from .service import KEY, free_port, submit, until_status, wait_for_job

pytestmark = pytest.mark.system

playwright = pytest.importorskip("playwright.sync_api", reason="the test extra installs playwright")
expect = playwright.expect

CHROMIUM = Path("/usr/bin/chromium")
# As on these machines: no sandbox (root), and nothing that reaches for the network by itself.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic", "--autoplay-policy=no-user-gesture-required"]
LONG = 120_000  # ms: a job's run on two shared cores


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: infra/setup.sh --test installs Debian's chromium")
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def artifacts() -> Path:
    root = Path(os.environ.get("DIARIST_TEST_ARTIFACTS") or Path(__file__).parent / "artifacts")
    folder = root / "ui"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def conversation(tmp_path_factory) -> Path:
    """Two voices taking turns, about twenty seconds."""
    path = tmp_path_factory.mktemp("ui-audio") / "conversation.wav"
    dialogue(path, 2, gap=0.5)
    return path


def shot(page, artifacts: Path, name: str) -> Path:
    path = artifacts / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def sign_in(page, url: str) -> None:
    page.goto(f"{url}/ui")
    expect(page).to_have_url(re.compile(r"/ui/login\?next=%2Fui$"))
    page.fill("#key", KEY)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{url}/ui")


def status_of(page):
    return page.locator("#status")


def test_sign_in_watch_jobs_live_stop_retry_delete_and_seek(service, browser, conversation, long_speech, artifacts):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        page.goto(f"{service.url}/ui")
        expect(page).to_have_url(re.compile(r"/ui/login\?next=%2Fui$"))
        page.fill("#key", "not-the-key")
        page.click("button[type=submit]")
        expect(page.locator("#login-error")).to_have_text("That API key is not valid.")
        shot(page, artifacts, "01-sign-in-refused")
        page.fill("#key", KEY)
        page.click("button[type=submit]")
        expect(page).to_have_url(f"{service.url}/ui")
        expect(page.locator("#live")).to_have_text("live")
        cookie = next(c for c in context.cookies() if c["name"] == "diarist_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/"
        assert page.evaluate("document.cookie") == ""  # no script of the page can read the key
        page.evaluate("window.loadedOnce = true")  # gone if the page ever reloads

        with service.client() as api:
            # A long job keeps the one inference worker busy, so the next one waits, QUEUED.
            long = submit(api, long_speech, '{"tag": "ui-long"}')
            long_row = page.locator(f'tr[data-id="{long["id"]}"]')
            expect(long_row).to_be_visible()  # appeared without a reload
            wait_for_job(api, long["id"], until_status("IN_PROGRESS"))
            short = submit(api, conversation, '{"tag": "ui-short"}')
        short_row = page.locator(f'tr[data-id="{short["id"]}"]')
        expect(short_row.locator(".status")).to_have_text("QUEUED")
        expect(long_row.locator(".status")).to_have_text("IN_PROGRESS")
        expect(page.locator("#jobs tbody tr").first).to_have_attribute("data-id", short["id"])  # newest first
        shot(page, artifacts, "02-jobs-live")

        job_page = context.new_page()
        job_page.goto(f"{service.url}/ui/jobs/{short['id']}")
        expect(status_of(job_page)).to_have_text("QUEUED")
        expect(job_page.locator("#stop")).to_be_enabled()
        job_page.evaluate("window.loadedOnce = true")
        shot(job_page, artifacts, "03-job-queued")

        long_page = context.new_page()
        long_page.goto(f"{service.url}/ui/jobs/{long['id']}")
        expect(status_of(long_page)).to_have_text("IN_PROGRESS")
        long_page.click("#stop")
        expect(status_of(long_page)).to_have_text("STOPPED", timeout=10_000)
        expect(long_page.locator("#retry")).to_be_enabled()
        expect(long_page.locator("#stop")).to_be_disabled()
        shot(long_page, artifacts, "04-long-job-stopped")

        # The short job runs now: its page follows it to COMPLETED without a reload.
        expect(status_of(job_page)).to_have_text("COMPLETED", timeout=LONG)
        assert job_page.evaluate("window.loadedOnce") is True
        expect(job_page.locator("#progress-text")).to_have_text("100.0%")
        expect(job_page.locator("#timings tr[data-stage=completed] td").nth(1)).not_to_have_text("—")
        expect(job_page.locator("#media")).to_contain_text("pcm_s16le")
        expect(job_page.locator("#downloads a")).to_have_count(5)
        expect(job_page.locator(".word").first).to_be_visible()
        assert job_page.locator("#timeline .lane").count() >= 2, "two voices, two speakers on the timeline"
        assert job_page.locator(".transcript .turn.spk-0").count() and job_page.locator(".transcript .turn.spk-1").count()
        for link in job_page.locator("#downloads a").all():
            status = job_page.evaluate("(href) => fetch(href).then((r) => r.status)", link.get_attribute("href"))
            assert status == 200, (link.get_attribute("href"), status)

        # A click on a word seeks the player to it.
        job_page.wait_for_function("document.getElementById('player').readyState >= 1")
        word = job_page.locator(".word").nth(12)
        start = float(word.get_attribute("data-start"))
        assert start > 1.0
        word.click()
        job_page.wait_for_function(f"Math.abs(document.getElementById('player').currentTime - {start}) < 1.0")
        at = job_page.evaluate("document.getElementById('player').currentTime")
        assert start - 0.05 <= at < start + 1.0, (start, at)
        shot(job_page, artifacts, "05-job-completed-seeked")

        # The list followed both, on the same page.
        expect(short_row.locator(".status")).to_have_text("COMPLETED", timeout=10_000)
        expect(long_row.locator(".status")).to_have_text("STOPPED")
        assert page.evaluate("window.loadedOnce") is True
        shot(page, artifacts, "06-jobs-after")

        # Retry the stopped job from its page, and stop it again.
        long_page.click("#retry")
        expect(status_of(long_page)).to_have_text(re.compile("QUEUED|IN_PROGRESS"))
        expect(long_page.locator("#stop")).to_be_enabled()
        long_page.click("#stop")
        expect(status_of(long_page)).to_have_text("STOPPED", timeout=10_000)
        expect(long_page.locator("#job-id")).to_have_text(long["id"])
        assert "retried" in long_page.locator("#history").inner_text()

        # Delete the completed one: media and transcript go.
        job_page.once("dialog", lambda dialog: dialog.accept())
        job_page.click("#delete")
        expect(status_of(job_page)).to_have_text("DELETED", timeout=10_000)
        expect(job_page.locator("#result-panel")).to_be_hidden()
        expect(short_row.locator(".status")).to_have_text("DELETED", timeout=10_000)

        # Filters: by tag, and by status, on the server; by API in the page.
        page.fill("#f-tag", "ui-long")
        page.click("#filters button[type=submit]")
        expect(page.locator("#jobs tbody tr")).to_have_count(1)
        expect(page).to_have_url(f"{service.url}/ui?tag=ui-long")
        page.select_option("#f-api", "cpqd")
        page.click("#filters button[type=submit]")
        expect(page.locator("#jobs tbody tr")).to_have_count(0)
        page.goto(f"{service.url}/ui?status=DELETED")
        expect(page.locator(f'tr[data-id="{short["id"]}"]')).to_be_visible()
        expect(page.locator(f'tr[data-id="{long["id"]}"]')).to_have_count(0)

        # Signing out ends the session.
        page.click("#sign-out")
        expect(page).to_have_url(f"{service.url}/ui/login")
        assert not [c for c in context.cookies() if c["name"] == "diarist_session"]
        page.goto(f"{service.url}/ui/jobs/{long['id']}")
        expect(page).to_have_url(re.compile(r"/ui/login\?next="))
    finally:
        context.close()


class _AttackerPage(http.server.BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:  # noqa: N802 (the handler's name)
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args) -> None:
        pass


def test_another_site_cannot_act_with_the_session(service, browser, speech, artifacts):
    with service.client() as api:  # a STOPPED job: a retry or a delete would take, were they let through
        job = submit(api, speech[0], '{"tag": "ui-csrf"}')
        assert api.post(f"/v1/jobs/{job['id']}/stop").json()["status"] == "STOPPED"
    context = browser.new_context()
    attacker = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _AttackerPage)
    threading.Thread(target=attacker.serve_forever, daemon=True).start()
    try:
        page = context.new_page()
        sign_in(page, service.url)
        # Same page, but no CSRF token: refused.
        status = page.evaluate("(url) => fetch(url, {method: 'DELETE'}).then((r) => r.status)", f"/v1/jobs/{job['id']}")
        assert status == 403
        # Another site (localhost is not 127.0.0.1) posts a form and calls fetch at the job: the
        # browser sends no SameSite=Strict cookie, so the service sees no session.
        target = f"{service.url}/v1/jobs/{job['id']}"
        _AttackerPage.body = f"""<!DOCTYPE html><html><body>
<form id="f" method="post" action="{target}/retry" target="sink"><input name="x" value="1"></form>
<iframe name="sink"></iframe>
<script>
fetch("{target}", {{method: "DELETE", credentials: "include"}}).catch(() => null);
fetch("{target}/retry", {{method: "POST", credentials: "include", mode: "no-cors"}}).catch(() => null);
document.getElementById("f").submit();
document.title = "sent";
</script></body></html>""".encode()
        evil = context.new_page()
        evil.goto(f"http://localhost:{attacker.server_address[1]}/")
        expect(evil).to_have_title("sent")
        evil.wait_for_timeout(1500)
        shot(evil, artifacts, "07-cross-site-attempt")
        with service.client() as api:
            assert api.get(f"/v1/jobs/{job['id']}").json()["status"] == "STOPPED"
        # and the job's own page still works for the signed-in user
        page.goto(f"{service.url}/ui/jobs/{job['id']}")
        expect(status_of(page)).to_have_text("STOPPED")
    finally:
        attacker.shutdown()
        context.close()
