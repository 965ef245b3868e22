"""`diarist submit FILE --wait`: post a file, follow the job, print the transcript."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn

from diarist.infra.settings import Settings

console = Console(stderr=True)


def submit(args: argparse.Namespace) -> int:
    settings = Settings().with_overrides(data_dir=Path(args.data_dir).resolve() if args.data_dir else None)
    url = args.url or f"http://127.0.0.1:{settings.port}"
    key = args.key or sorted(settings.api_keys())[0]
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
        with args.file.open("rb") as media:
            files = {"media": (args.file.name, media)}
            data = {"options": args.options} if args.options else None
            response = client.post("/v1/jobs", files=files, data=data)
        if response.status_code != 201:
            console.print(f"[red]refused ({response.status_code}):[/] {response.json().get('detail')}")
            return 1
        job = response.json()
        console.print(f"job {job['id']} {job['status']}")
        if not args.wait:
            print(job["id"])
            return 0
        job = _follow(client, job["id"])
        if job["status"] != "COMPLETED":
            console.print(f"[red]job {job['status']}[/] {job.get('failure_reason') or ''}")
            return 1
        result = client.get(f"/v1/jobs/{job['id']}/result").json()
        console.print(f"language {result['language']} ({result['language_probability']:.0%})")
        for segment in result["segments"]:
            print(f"[{segment['start']:8.2f} - {segment['end']:8.2f}] {segment['text']}")
        return 0


def _follow(client: httpx.Client, job_id: str) -> dict:
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  console=console, transient=True) as progress:
        task = progress.add_task("QUEUED", total=100)
        while True:
            job = client.get(f"/v1/jobs/{job_id}").json()
            progress.update(task, completed=job["progress"], description=job["status"])
            if job["status"] in ("COMPLETED", "FAILED", "STOPPED", "DELETED"):
                return job
            time.sleep(0.5)
