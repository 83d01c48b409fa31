"""The one Settings object: every part of mediajobs reads its configuration here and nowhere else."""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SECRET_WORDS = ("key", "secret", "pass", "pwd", "token", "signature", "credential", "auth", "sig")
HIDDEN = "****"
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
# sockaddr_un's sun_path holds 108 bytes including the terminating NUL.
SUN_PATH_MAX = 107
# What `mediajobs up` keeps in the managed Redis's directory for every process that shares the data dir.
BROKER_PASSWORD_FILE = "password"
BROKER_PORT_FILE = "port"
BROKER_SOCKET_FILE = "redis.sock"


class Settings(BaseSettings):
    """Configuration from `MEDIAJOBS_*` environment variables (and an optional `.env`)."""

    model_config = SettingsConfigDict(env_prefix="MEDIAJOBS_", env_file=".env", extra="ignore")

    data_dir: Path = Path("./mediajobs-data")
    database_url: str = ""
    broker_url: str = ""
    storage_url: str = ""
    s3_endpoint_url: str = ""
    s3_addressing_style: str = "auto"
    # Which file answers on S3 are redirects to signed bucket URLs; HLS stays on the API's origin by default
    # (browsers' players need bucket CORS rules, and Chromium's native one a `crossorigin` page, otherwise).
    s3_redirect: Literal["except-hls", "all", "none"] = "except-hls"
    host: str = "127.0.0.1"
    port: int = 8000
    api_keys: str = ""
    import_allow_private: bool = False
    # Test-only: addresses (CIDRs, comma-separated) that count as public for import checks.
    import_public_cidrs: str = ""
    # Ports imports may connect to ("*" for any).
    import_allowed_ports: str = "80,443"
    # Host header values the API answers to (comma-separated); loopback names and `host` always count.
    allowed_hosts: str = ""
    # Largest source accepted: duration in seconds, and width x height of its picture.
    max_duration_s: float = 6 * 3600.0
    max_pixels: int = 4096 * 2304
    # Memory (address space) every ffmpeg/ffprobe/yt-dlp child may use.
    child_memory_bytes: int = 4 * 1024**3
    # Memory (address space) every worker pool process may use (0: unlimited); its children get their own.
    worker_memory_bytes: int = 2 * 1024**3
    # Lifetime of signed playback URLs (and of S3 redirects) when auth is on.
    playback_token_ttl_s: int = 6 * 3600
    # When set, /metrics is served on this port (loopback) instead of behind the API token.
    metrics_port: int = 0
    max_upload_bytes: int = 10 * 1024**3
    # A resumable upload that receives no byte for this long is removed, with its asset.
    upload_expiry_s: float = 86400.0
    # Where the CLI (and URLs handed out: webhooks, the bucket CORS check) find the API; unset: HOST:PORT.
    api_url: str = ""
    # The CLI's bearer token; when unset it uses the first of `api_keys`.
    api_key: str = ""
    # 0: the managed Redis listens on a unix socket in the data dir (or a free loopback port when that path
    # is too long for a socket); a port: it listens on 127.0.0.1 there.
    managed_broker_port: int = 0

    # Application modules that register their own job kinds (comma-separated import paths).
    kind_modules: str = ""

    # Engine timings; the defaults suit production, tests shorten them.
    heartbeat_interval_s: float = 5.0
    heartbeat_timeout_s: float = 30.0
    maintenance_interval_s: float = 1.0
    republish_after_s: float = 600.0
    hls_swap_grace_s: float = 30.0
    # Sources longer than this are transcoded as chunks of segments, one child job each, on every cpu worker.
    chunk_threshold_s: float = 60.0
    cancel_poll_interval_s: float = 0.25
    retry_backoff_base_s: float = 2.0
    retry_backoff_max_s: float = 300.0
    # The most child jobs one job may fan out to (ctx.fan_out); more fails it with too_many_children.
    max_children: int = 10000
    # Images rendered on request per asset and HLS version (each kept in storage); past it requests get 429.
    max_image_renders: int = Field(default=1000, ge=0)
    # How long a running job rides through an unreachable database (claim and outcome are retried that long).
    db_outage_grace_s: float = 60.0
    # How long a stopping worker lets running jobs finish before handing them back to the queue.
    shutdown_grace_s: float = 10.0
    max_json_body_bytes: int = 1024 * 1024
    # The API's connections: a request head must be complete within this long (slowloris); open connections
    # per client address (0: no limit, for behind a proxy); event streams open at once per caller.
    request_head_timeout_s: float = 10.0
    max_connections_per_client: int = 256
    max_streams_per_caller: int = 32
    temp_dir: Path | None = None

    # Worker sizing for `mediajobs up`: cpu-bound ffmpeg work and wide io/default pools.
    cpu_concurrency: int = Field(default=0, description="0: cores // 2, at least 1")
    io_concurrency: int = Field(default=0, description="0: 2 x cores, at least 4")
    ffmpeg_threads: int = Field(default=0, description="0: cores // cpu_concurrency")

    @field_validator("data_dir", mode="after")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'mediajobs.db'}"

    @property
    def effective_storage_url(self) -> str:
        return self.storage_url or f"file://{self.data_dir / 'storage'}"

    @property
    def managed_broker(self) -> bool:
        return not self.broker_url

    @property
    def managed_broker_dir(self) -> Path:
        return self.data_dir / "redis"

    @property
    def managed_broker_socket(self) -> Path | None:
        """The managed Redis's unix socket; None when a port is configured or the path is too long."""
        path = self.managed_broker_dir / BROKER_SOCKET_FILE
        if self.managed_broker_port or len(os.fsencode(path)) > SUN_PATH_MAX:
            return None
        return path

    @property
    def effective_broker_url(self) -> str:
        """The Celery broker; for the managed Redis, its socket (or port) and password from the data dir."""
        if self.broker_url:
            return self.broker_url
        directory = self.managed_broker_dir
        password = _read_text(directory / BROKER_PASSWORD_FILE)
        auth = f":{quote(password, safe='')}@" if password else ""
        socket = self.managed_broker_socket
        if socket is not None:
            return f"redis+socket://{auth}{quote(str(socket))}?virtual_host=0"
        # Port 0 (nothing recorded: `up` never ran with this data dir) is refused at once when connecting.
        port = self.managed_broker_port or int(_read_text(directory / BROKER_PORT_FILE) or 0)
        return f"redis://{auth}127.0.0.1:{port}/0"

    @property
    def broker_client_url(self) -> str:
        """The broker as redis-py spells it, for what talks to Redis directly (checks, the restart watch)."""
        return redis_py_url(self.effective_broker_url)

    @property
    def effective_api_url(self) -> str:
        """`MEDIAJOBS_API_URL`, or the API this machine's `MEDIAJOBS_HOST`/`MEDIAJOBS_PORT` make it listen on.

        A wildcard host (`0.0.0.0`, `::`) listens on every address, loopback included: the CLI calls loopback.
        """
        if self.api_url.strip():
            return self.api_url.strip()
        host = self.host.strip().strip("[]") or "127.0.0.1"
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "*": "127.0.0.1"}.get(host, host)
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    @property
    def cli_token(self) -> str:
        """The CLI's bearer token: `MEDIAJOBS_API_KEY`, else the first of `MEDIAJOBS_API_KEYS`."""
        return self.api_key or next(iter(self.api_key_list), "")

    @property
    def api_key_list(self) -> list[str]:
        """The API keys in the order given (the first signs playback tokens)."""
        return [k.strip() for k in self.api_keys.split(",") if k.strip()]

    @property
    def api_key_set(self) -> frozenset[str]:
        return frozenset(self.api_key_list)

    @property
    def allowed_host_set(self) -> frozenset[str]:
        """Host header names (without port) the API answers to."""
        names = {"localhost", "127.0.0.1", "::1", self.host.strip("[]")}
        names |= {h.strip().strip("[]").lower() for h in self.allowed_hosts.split(",") if h.strip()}
        return frozenset(n for n in names if n and n not in ("0.0.0.0", "::"))

    @property
    def effective_temp_dir(self) -> Path:
        return self.temp_dir or self.data_dir / "tmp"

    @property
    def cores(self) -> int:
        return os.cpu_count() or 1

    @property
    def effective_cpu_concurrency(self) -> int:
        return self.cpu_concurrency or max(1, self.cores // 2)

    @property
    def effective_io_concurrency(self) -> int:
        return self.io_concurrency or max(4, 2 * self.cores)

    @property
    def effective_ffmpeg_threads(self) -> int:
        return self.ffmpeg_threads or max(1, self.cores // self.effective_cpu_concurrency)

    def example_secrets(self) -> list[str]:
        """The variables still holding an example secret (`change-me…`, as in deploy/.env.example)."""
        found = ["MEDIAJOBS_API_KEYS"] if any(k.startswith(EXAMPLE_SECRET) for k in self.api_key_list) else []
        for name, url in (
            ("MEDIAJOBS_DATABASE_URL", self.database_url),
            ("MEDIAJOBS_BROKER_URL", self.broker_url),
        ):
            try:
                password = urlsplit(url).password
            except ValueError:
                continue
            if password and unquote(password).startswith(EXAMPLE_SECRET):
                found.append(name)
        return found

    def masked(self) -> dict[str, str]:
        """The effective configuration with secrets hidden, for `doctor` and logs."""
        shown = {
            "data_dir": str(self.data_dir),
            "database_url": mask_url(self.effective_database_url),
            "broker_url": mask_url(self.effective_broker_url) + (" (managed)" if self.managed_broker else ""),
            "storage_url": mask_url(self.effective_storage_url),
            "s3_endpoint_url": mask_url(self.s3_endpoint_url) if self.s3_endpoint_url else "(AWS default)",
            "host": self.host,
            "port": str(self.port),
            "api_keys": f"{len(self.api_key_set)} key(s) set" if self.api_key_set else "(none: no auth)",
            "import_allow_private": str(self.import_allow_private).lower(),
            "import_public_cidrs": f"{self.import_public_cidrs} (test-only)"
            if self.import_public_cidrs
            else "(none)",
            "import_allowed_ports": self.import_allowed_ports,
            "allowed_hosts": ", ".join(sorted(self.allowed_host_set)),
            "max_duration_s": f"{self.max_duration_s:g}",
            "max_pixels": str(self.max_pixels),
            "max_upload_bytes": str(self.max_upload_bytes),
            "upload_expiry_s": f"{self.upload_expiry_s:g}",
            "api_url": mask_url(self.effective_api_url),
            "kind_modules": self.kind_modules or "(none)",
            "cpu_concurrency": str(self.effective_cpu_concurrency),
            "io_concurrency": str(self.effective_io_concurrency),
            "ffmpeg_threads": str(self.effective_ffmpeg_threads),
        }
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            if os.environ.get(name):
                shown[name] = "****"
        return shown


def _read_text(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:  # missing (`up` never ran here) or not ours to read: connecting then says why
        return ""


# How deploy/.env.example's secrets begin: a process that finds one refuses to start.
EXAMPLE_SECRET = "change-me"


def redis_py_url(url: str) -> str:
    """A kombu Redis URL in redis-py's spelling: `redis+socket://…?virtual_host=N` -> `unix://…?db=N`.

    kombu takes a socket only as `redis+socket://` (the database as `virtual_host`, the password only in the
    userinfo); redis-py takes it only as `unix://` (the database as `db`).
    """
    parts = urlsplit(url)
    if parts.scheme != "redis+socket":
        return url
    query = urlencode([("db" if k == "virtual_host" else k, v) for k, v in parse_qsl(parts.query)])
    return f"unix://{parts.netloc}{parts.path}" + (f"?{query}" if query else "")


def _secret_name(name: str) -> bool:
    lowered = unquote(name).lower()
    return any(word in lowered for word in SECRET_WORDS)


def mask_url(url: str) -> str:
    """The URL with its userinfo (when it has a password) and secret-looking query values hidden.

    `postgresql://user:pw@db/x` -> `postgresql://****:****@db/x`; `redis://user@host` keeps its bare user;
    `?password=...`, `?X-Amz-Signature=...` and any parameter named like a secret show `****`.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return HIDDEN
    # Rebuilt by hand: urlunsplit would turn `sqlite:///path` into `sqlite:/path`.
    base, question, rest = url.partition("?")
    query, hash_, fragment = rest.partition("#")
    if not question:
        base, hash_, fragment = url.partition("#")
    userinfo, at, _ = parts.netloc.rpartition("@")
    if at and ":" in userinfo:
        base = base.replace(f"{userinfo}@", f"{HIDDEN}:{HIDDEN}@", 1)
    query = "&".join(
        f"{name}={HIDDEN}" if sep and _secret_name(name) else f"{name}{sep}{value}"
        for name, sep, value in (pair.partition("=") for pair in query.split("&"))
    )
    return f"{base}{question}{query}{hash_}{fragment}"


def mask_text(text: str) -> str:
    """`text` (an error message, say) with every URL in it masked."""
    return _URL_IN_TEXT.sub(lambda m: mask_url(m[0]), text)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
