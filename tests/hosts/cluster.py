"""The scale-out cluster: PostgreSQL + Redis + S3 on one host, the API on another, workers on two more.

    with ScaleOut.start(workers=2) as cluster:
        with cluster.client() as api: ...          # the test process talks to the API over the bridge
        cluster.workers[0].host.kill_all()        # a worker host dies
        cluster.start_worker(cluster.workers[0])  # and comes back

Every process has only its host's directories (its data dir is its working directory, its /tmp is private);
the database, the broker and the bucket are reached by name over the bridge, as on separate machines.
"""

from __future__ import annotations

import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from mediajobs.testing.s3 import with_test_credentials
from mediajobs.testing.servers import binary, wait_for
from mediajobs.testing.stacks import TEST_TIMINGS, base_env
from tests.hosts.netns import Host, Network
from tests.hosts.procs import VENV_BIN, HostsTransport, Postgres, Proc, tcp_open
from tests.stacks import KINDS, Stored

API_PORT, REDIS_PORT, S3_PORT = 8000, 6379, 9000
BUCKET = "mediajobs"
S3_PREFIX = "hosts"
# Short engine timings, so that losses are noticed within seconds (the defaults suit production).
FAST = {
    **TEST_TIMINGS,
    # A host killed between answering 202 and publishing (a background thread) leaves its job for the relay
    # of another process, after this long (600 s by default): still "nothing lost", within the test's wait.
    "MEDIAJOBS_REPUBLISH_AFTER_S": "15",
}


@dataclass
class Member:
    """A host of the cluster and the mediajobs process it runs."""

    host: Host
    proc: Proc | None = None

    @property
    def temp_dir(self) -> Path:
        return self.host.data / "tmp"

    def job_dirs(self) -> list[str]:
        """The job temp directories on this host (each removed when its attempt ends, however it ends)."""
        return sorted(p.name for p in self.temp_dir.glob("job-*")) if self.temp_dir.is_dir() else []


@dataclass
class ScaleOut:
    """The cluster of issue 12: `services` (PostgreSQL, Redis, S3), `api`, `worker-1`, `worker-2`."""

    network: Network
    services: Host
    api: Member
    workers: list[Member]
    env: dict[str, str]
    api_key: str
    infra: list[Proc] = field(default_factory=list)

    @classmethod
    def start(cls, *, workers: int = 2, env: dict[str, str] | None = None) -> ScaleOut:
        network = Network.create()
        try:
            return cls._start(network, workers, env or {})
        except BaseException:
            network.destroy()
            raise

    @classmethod
    def _start(cls, network: Network, workers: int, extra: dict[str, str]) -> ScaleOut:
        services = network.add_host("services", aliases=("postgres", "redis", "s3"))
        api = Member(network.add_host("api"))
        members = [Member(network.add_host(f"worker-{i + 1}")) for i in range(workers)]
        postgres = Postgres(services, user="mediajobs", password=secrets.token_hex(8), database="mediajobs")
        postgres.start()
        redis_password = secrets.token_hex(8)
        redis = [binary("redis-server"), "--bind", "0.0.0.0", "--port", str(REDIS_PORT)]
        redis += ["--requirepass", redis_password, "--save", "", "--appendonly", "yes"]
        redis += ["--dir", str(services.data), "--maxmemory-policy", "noeviction"]
        moto = [str(VENV_BIN / "moto_server"), "-H", "0.0.0.0", "-p", str(S3_PORT)]
        infra = [
            Proc(services, "redis", redis, base_env()).start(),
            Proc(services, "s3", moto, base_env()).start(),
        ]
        assert postgres.proc is not None
        infra.insert(0, postgres.proc)
        api_key = secrets.token_urlsafe(16)
        env = base_env(
            MEDIAJOBS_DATABASE_URL=postgres.url("postgres"),
            MEDIAJOBS_BROKER_URL=f"redis://:{redis_password}@redis:{REDIS_PORT}/0",
            MEDIAJOBS_STORAGE_URL=f"s3://{BUCKET}/{S3_PREFIX}",
            MEDIAJOBS_S3_ENDPOINT_URL=f"http://s3:{S3_PORT}",
            # A host name, not an address: botocore would otherwise try bucket.s3 (virtual hosting).
            MEDIAJOBS_S3_ADDRESSING_STYLE="path",
            MEDIAJOBS_KIND_MODULES=KINDS,
            MEDIAJOBS_API_KEYS=api_key,
            MEDIAJOBS_API_URL=f"http://api:{API_PORT}",
            MEDIAJOBS_FFMPEG_THREADS="1",
            **FAST,
        )
        env = with_test_credentials({**env, **extra})
        cluster = cls(network, services, api, members, env, api_key, infra)
        postgres.create_database()
        wait_for(lambda: tcp_open(services.address, REDIS_PORT), message="Redis")
        bucket = cluster.stored()
        wait_for(bucket.create, timeout_s=30, message="the S3 server")
        cluster.start_api()
        for member in members:
            cluster.start_worker(member)
        return cluster

    def __enter__(self) -> ScaleOut:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.destroy()

    def member_env(self, member: Member) -> dict[str, str]:
        return {**self.env, "MEDIAJOBS_DATA_DIR": str(member.host.data)}

    def start_api(self) -> None:
        env = {
            **self.member_env(self.api),
            "MEDIAJOBS_HOST": "0.0.0.0",
            "MEDIAJOBS_PORT": str(API_PORT),
            "MEDIAJOBS_ALLOWED_HOSTS": f"api,{self.api.host.address}",
        }
        self.api.proc = Proc(self.api.host, "api", [sys.executable, "-m", "mediajobs", "api"], env).start()
        self.api.proc.wait_until(
            lambda: httpx.get(f"{self.api_url}/readyz", timeout=2).status_code == 200,
            timeout_s=60,
            what="the API to be ready",
        )

    def start_worker(
        self, member: Member, *, queues: str = "io,cpu,default", concurrency: int = 2, cpus: str | None = None
    ) -> None:
        """Start (or restart) the host's worker; `cpus` pins every process of it (as `taskset` would)."""
        argv = [sys.executable, "-m", "mediajobs", "worker", "--queues", queues, "-c", str(concurrency)]
        proc = Proc(member.host, "worker", argv, self.member_env(member), cpus=cpus)
        start = proc.log_path.stat().st_size if proc.log_path.exists() else 0
        member.proc = proc.start()
        proc.wait_until(
            lambda: b" ready." in proc.log_path.read_bytes()[start:],
            timeout_s=60,
            what=f"worker {member.host.name} to be ready",
        )

    @property
    def api_url(self) -> str:
        return f"http://{self.api.host.address}:{API_PORT}"

    def client(self) -> httpx.Client:
        """A client of the API by its name, `api`, as the hosts see it (presigned S3 URLs name `s3`)."""
        return httpx.Client(
            base_url=f"http://api:{API_PORT}",
            transport=HostsTransport(self.network),
            timeout=30,
            headers={"Authorization": f"Bearer {self.api_key}"},
        )

    def stored(self) -> S3:
        return S3(bucket=BUCKET, endpoint_url=f"http://{self.services.address}:{S3_PORT}", prefix=S3_PREFIX)

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        """Read the database of record directly (over the bridge), for what the API does not show."""
        import psycopg

        url = self.env["MEDIAJOBS_DATABASE_URL"].replace("@postgres:", f"@{self.services.address}:")
        with psycopg.connect(url, connect_timeout=5) as conn:
            return list(conn.execute(query, params).fetchall())  # type: ignore[arg-type]

    def member(self, hostname: str) -> Member:
        return next(m for m in [self.api, *self.workers] if m.host.name == hostname)

    def logs(self) -> str:
        procs = [*self.infra, *(m.proc for m in [self.api, *self.workers] if m.proc)]
        return "\n".join(f"--- {p.host.name}/{p.name} ---\n{p.log(3000)}" for p in procs)

    def destroy(self) -> None:
        """Everything stops at once (no grace: nothing here is under test any more), PostgreSQL cleanly."""
        for member in [self.api, *self.workers]:
            member.host.kill_all()
            if member.proc is not None:
                member.proc.stop(timeout_s=1)
        for proc in reversed(self.infra):
            proc.stop(timeout_s=10)
        self.network.destroy()


class S3(Stored):
    """What the bucket holds, read over the bridge; `create()` makes the bucket (False until S3 answers)."""

    def create(self) -> bool:
        self._s3.create_bucket(Bucket=self.bucket)
        return True
