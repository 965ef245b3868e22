"""Configuration: every setting comes from a DIARIST_* environment variable (flags override)."""
from __future__ import annotations

import math
import os
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path

from diarist.streams.urls import Allowlist


def _env(name: str, default: str) -> str:
    return os.environ.get(f"DIARIST_{name}", default)


def default_data_dir() -> Path:
    """Per user, never inside a checkout: `$XDG_DATA_HOME/diarist`, else `~/.local/share/diarist`."""
    xdg = os.environ.get("XDG_DATA_HOME", "")
    # The XDG spec says a relative path is invalid and is to be ignored.
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    return base / "diarist"


def _data_dir() -> Path:
    env = os.environ.get("DIARIST_DATA_DIR", "")
    return Path(env).resolve() if env else default_data_dir()


@dataclass(frozen=True)
class Settings:
    data_dir: Path = field(default_factory=_data_dir)
    host: str = field(default_factory=lambda: _env("HOST", "127.0.0.1"))
    port: int = field(default_factory=lambda: int(_env("PORT", "8000")))
    # How the other jobs workers reach this one's edge (requests for jobs it owns are forwarded).
    advertised_url_env: str = field(default_factory=lambda: _env("ADVERTISED_URL", ""))
    # Shared by every worker of a deployment: uploads land on one, inference reads on another.
    blob_dir_env: str = field(default_factory=lambda: _env("BLOB_DIR", ""))
    # Or an S3-compatible store for them, s3://bucket/prefix (streams/blobs.py; file:///path is a
    # local directory too), at this endpoint (empty: AWS itself) and region; credentials are the
    # usual AWS_* variables. The addressing style is path with an endpoint of one's own, else auto.
    blob_url: str = field(default_factory=lambda: _env("BLOB_URL", ""))
    s3_endpoint_url: str = field(default_factory=lambda: _env("S3_ENDPOINT_URL", ""))
    s3_region: str = field(default_factory=lambda: _env("S3_REGION", ""))
    s3_addressing_style: str = field(default_factory=lambda: _env("S3_ADDRESSING_STYLE", ""))
    # Empty means: run the embedded broker (`diarist up`) and use it.
    bootstrap_servers: str = field(default_factory=lambda: _env("BOOTSTRAP_SERVERS", ""))
    broker_port: int = field(default_factory=lambda: int(_env("BROKER_PORT", "9092")))
    partitions: int = field(default_factory=lambda: int(_env("PARTITIONS", "6")))
    # Replicas of each topic diarist creates, and how many must have a write before it counts
    # (min.insync.replicas); empty: min(3, brokers), and 2 from three replicas on (infra/topics.py).
    replication_factor_env: str = field(default_factory=lambda: _env("REPLICATION_FACTOR", ""))
    min_insync_replicas_env: str = field(default_factory=lambda: _env("MIN_INSYNC_REPLICAS", ""))
    # Names the topics and consumer groups, so that deployments can share one Kafka cluster.
    namespace: str = field(default_factory=lambda: _env("NAMESPACE", "diarist"))
    model: str = field(default_factory=lambda: _env("MODEL", "base"))
    engine: str = field(default_factory=lambda: _env("ENGINE", "faster-whisper"))
    # An engine other than the default one is unloaded after this long unused, to free memory.
    model_idle_seconds: float = field(default_factory=lambda: float(_env("MODEL_IDLE_SECONDS", "600")))
    inference_threads: int = field(default_factory=lambda: int(_env("INFERENCE_THREADS", str(os.cpu_count() or 2))))
    api_keys_env: str = field(default_factory=lambda: _env("API_KEYS", ""))
    max_media_bytes: int = field(default_factory=lambda: int(_env("MAX_MEDIA_BYTES", str(2 * 1024**3))))
    media_url_timeout: float = field(default_factory=lambda: float(_env("MEDIA_URL_TIMEOUT", "60")))
    # CIDRs and host names that media and callback URLs may point to although not public (streams/urls.py);
    # by default none: loopback, private, link-local and the like are refused.
    url_allow_env: str = field(default_factory=lambda: _env("URL_ALLOW", ""))
    session_timeout: float = field(default_factory=lambda: float(_env("SESSION_TIMEOUT", "10")))
    # Per API key and jobs worker process (api/limits.py): requests a second, with bursts of
    # rate_burst (default twice the rate), and uploads in progress at once; 0 turns a limit off.
    rate_limit: float = field(default_factory=lambda: float(_env("RATE_LIMIT", "50")))
    rate_burst_env: str = field(default_factory=lambda: _env("RATE_BURST", ""))
    max_concurrent_uploads: int = field(default_factory=lambda: int(_env("MAX_CONCURRENT_UPLOADS", "8")))
    # Callbacks are signed with this key (HMAC-SHA256) when it is set.
    callback_secret: str = field(default_factory=lambda: _env("CALLBACK_SECRET", ""))
    # A callback is tried this many times, waiting backoff, 2 x backoff, 4 x backoff ... between.
    callback_attempts: int = field(default_factory=lambda: int(_env("CALLBACK_ATTEMPTS", "5")))
    callback_backoff_seconds: float = field(default_factory=lambda: float(_env("CALLBACK_BACKOFF_SECONDS", "4")))
    log_level: str = field(default_factory=lambda: _env("LOG_LEVEL", "warn"))
    # json: one JSON object a line, with job_id where there is one (infra/logs.py); text: Faust's own lines.
    log_format: str = field(default_factory=lambda: _env("LOG_FORMAT", "text"))
    # Each inference worker serves its Prometheus metrics on this port, on DIARIST_HOST (0: none).
    inference_metrics_port: int = field(default_factory=lambda: int(_env("INFERENCE_METRICS_PORT", "0")))
    # An external schema registry (Confluent, Karapace, Apicurio's ccompat API) to register the schemas
    # in and frame with its ids (schemas/external.py); credentials as https://user:password@host.
    schema_registry_url: str = field(default_factory=lambda: _env("SCHEMA_REGISTRY_URL", ""))

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @property
    def bootstrap(self) -> str:
        return self.bootstrap_servers or f"127.0.0.1:{self.broker_port}"

    @property
    def replication_factor(self) -> int | None:
        """DIARIST_REPLICATION_FACTOR; None: as many as the cluster has brokers, up to 3."""
        return int(self.replication_factor_env) if self.replication_factor_env else None

    @property
    def min_insync_replicas(self) -> int | None:
        """DIARIST_MIN_INSYNC_REPLICAS; None: 2 with three replicas or more, else 1."""
        return int(self.min_insync_replicas_env) if self.min_insync_replicas_env else None

    @property
    def blob_dir(self) -> Path:
        return Path(self.blob_dir_env).resolve() if self.blob_dir_env else self.data_dir / "blobs"

    @property
    def advertised_url(self) -> str:
        if self.advertised_url_env:
            return self.advertised_url_env.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    def url_allow(self) -> Allowlist:
        """DIARIST_URL_ALLOW, parsed; ValueError naming the entry that is neither a CIDR nor a host name."""
        return Allowlist.from_env(self.url_allow_env)

    @property
    def rate_burst(self) -> int:
        return int(self.rate_burst_env) if self.rate_burst_env else max(1, math.ceil(2 * self.rate_limit))

    @property
    def supervisor_state_file(self) -> Path:
        """Where `diarist up` keeps its children's states, for /healthz (cli/supervisor.py)."""
        return self.data_dir / "supervisor.json"

    @property
    def api_key_file(self) -> Path:
        return self.data_dir / "api-key"

    def api_keys(self) -> frozenset[str]:
        """Keys from DIARIST_API_KEYS; without any, the one kept in the data directory (made once)."""
        keys = {k.strip() for k in self.api_keys_env.split(",") if k.strip()}
        if keys:
            return frozenset(keys)
        if not self.api_key_file.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self.api_key_file.write_text(secrets.token_urlsafe(24) + "\n")
            self.api_key_file.chmod(0o600)
        return frozenset({self.api_key_file.read_text().strip()})
