"""Schemathesis against the real service (issue 9: no input makes a server error, and every answer is
what the OpenAPI document says): every operation of /openapi.json but the slow synchronous
transcription, at most MAX_EXAMPLES generated cases each in the fuzzing phase (plus Schemathesis's
examples and coverage phases), valid and invalid, with the API key.

Nothing leaves loopback: the service and Schemathesis itself run behind the network fence
(tests/fence), generated URLs are loopback or refused address literals (tests/fuzz), and the service
allows only 127.0.0.0/8. The figures (operations, test cases, failures, time) are printed; run with
-s to see them:

    python3 -m pytest -q -s tests/test_fuzz.py
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import running_service
from .service import KEY, fenced

pytestmark = pytest.mark.system

MAX_EXAMPLES = 20
SEED = 9  # the same cases every run; change it to look elsewhere
CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance", "response_schema_conformance",
          "response_headers_conformance", "unsupported_method")
EXCLUDED = ("/trd/v3/transcribe",  # waits for each job to finish: minutes a case
            "/v1/events")  # a server-sent event stream that never ends (tests/test_events.py reads it)
HOOKS = Path(__file__).parent / "fuzz"


@pytest.fixture(scope="module")
def service(tmp_path_factory, kafka, fence_log):
    # Without the per-key rate and upload limits, so that cases reach the logic behind them rather than a 429.
    yield from running_service(tmp_path_factory, kafka, "fuzz", DIARIST_RATE_LIMIT="0", DIARIST_MAX_CONCURRENT_UPLOADS="0",
                               **fenced(fence_log))


def schemathesis(service, report: Path, fence_log: Path) -> tuple[list[str], subprocess.CompletedProcess]:
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{service.url}/openapi.json",
        "--header", f"Authorization: Bearer {KEY}", "--checks", ",".join(CHECKS),
        *(arg for path in EXCLUDED for arg in ("--exclude-path", path)),
        "--phases", "examples,coverage,fuzzing", "--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED),
        # One worker: more threads trip a race in CPython 3.11's ast.parse inside Hypothesis (a "Runtime Error").
        "--workers", "1", "--request-timeout", "60", "--max-redirects", "0", "--generation-database", "none",
        "--report", "json", "--report-json-path", str(report), "--no-color",
    ]
    fence = fenced(fence_log)
    env = {**os.environ, **fence, "SCHEMATHESIS_HOOKS": "diarist_fuzz_hooks",
           "PYTHONPATH": os.pathsep.join([str(HOOKS), fence["PYTHONPATH"]])}
    # In the test's own folder: Schemathesis keeps a crash cache (.schemathesis/) where it runs.
    return command, subprocess.run(command, env=env, capture_output=True, text=True, timeout=1500, cwd=report.parent)


def test_no_input_makes_a_server_error_and_every_answer_is_documented(service, fence_log, tmp_path):
    report = tmp_path / "schemathesis.json"
    command, run = schemathesis(service, report, fence_log)
    print("\n" + " ".join(command) + "\n" + run.stdout[-6000:])
    document = json.loads(report.read_text())
    print("schemathesis figures:", json.dumps({
        "version": document["schemathesis_version"], "operations": document["operations"],
        "test_cases": document["test_cases"], "failures": document["failures"], "errors": document["errors"],
        "running_time_s": document["running_time"], "seed": SEED, "max_examples": MAX_EXAMPLES}, default=str))
    refused = fence_log.read_text().splitlines()
    print(f"network fence: {len(refused)} refusals (lookups or connections beyond loopback, none sent)",
          *refused[:20], sep="\n")
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]
    assert document["operations"]["tested"] == document["operations"]["selected"] > 0
    assert not [line for line in refused if "connect" in line.split()[1:2]], "a connection beyond loopback was tried"
