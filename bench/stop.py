"""How fast a stop reaches a running job: stop request -> its engine process killed.

Run: python bench/stop.py [--runs 5]. Starts a broker and the service on free ports, submits a
minute of speech, stops it mid-transcription, and reads the inference worker's log for the
moment the engine was killed.
"""
from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from diarist.infra.broker import KafkaBroker  # noqa: E402
from tests.audio import long_text, speak  # noqa: E402
from tests.service import Service, free_port, submit, wait_for_job  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="diarist-bench-stop-"))
    audio = speak(long_text(60), tmp / "long.wav")
    broker = KafkaBroker(tmp / "kafka", port=free_port(), controller_port=free_port())
    broker.start()
    (tmp / "svc").mkdir()
    service = Service(tmp / "svc", broker.bootstrap_servers, "bench-stop")
    rows = []
    try:
        service.start("worker")
        service.start("inference")
        service.wait_healthy()
        with service.client() as client:
            for _ in range(args.runs):
                job = submit(client, audio)
                wait_for_job(client, job["id"], lambda j: j["status"] == "IN_PROGRESS" and j["progress"] > 0)
                asked = datetime.now().astimezone()
                answered = client.post(f"/v1/jobs/{job['id']}/stop").elapsed.total_seconds()
                pattern = rf"\[(\S+ \S+)\] \[\d+\] \[INFO\] job {job['id']} stopped while running"
                while not (match := re.search(pattern, service.log("inference"))):
                    time.sleep(0.05)
                killed = datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S,%f").astimezone()
                rows.append((answered, (killed - asked).total_seconds()))
    finally:
        service.close()
        broker.stop()
    for answered, killed in rows:
        print(f"stop answered in {answered * 1000:4.0f} ms; engine killed {killed * 1000:4.0f} ms after the request")
    kills = [killed for _, killed in rows]
    print(f"engine killed after the stop: median {statistics.median(kills) * 1000:.0f} ms, "
          f"max {max(kills) * 1000:.0f} ms over {len(kills)} runs")


if __name__ == "__main__":
    main()
