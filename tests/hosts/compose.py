"""deploy/compose.yaml run without a container engine: each service in a host of its own, by its name.

What the file says is what runs: every service's `command` and `environment` (interpolated from the
variables, as `docker compose` does from deploy/.env), `depends_on` with its conditions (started, healthy,
completed successfully) and `healthcheck` tests, run inside the service's host. The images are what cannot
run here, so they are replaced by local programs:

- a service `build`-ing the mediajobs image runs its command from this checkout's virtualenv;
- `postgres` is a local PostgreSQL cluster honouring POSTGRES_USER, POSTGRES_PASSWORD and POSTGRES_DB;
- `redis` runs its command as written, with the local redis-server;
- `minio/minio` is moto's S3 server on port 9000 (MinIO cannot be downloaded here), checked by an S3
  request instead of its `mc ready` healthcheck;
- `minio/mc` runs its entrypoint and command as written with `mc` being tests/hosts/standin_mc.py, which
  understands `mb`, the `admin` commands that make a user and a policy (recorded, since moto's S3 server has
  no MinIO admin API) and MC_HOST_<alias>.

Secrets a service is granted are files in `/run/secrets` of its host, as in a container.

Volumes, ports and restart policies are not modelled: each host keeps its files in its own directory.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType

import httpx

from mediajobs.testing.stacks import base_env
from tests.hosts.composefile import COMPOSE_FILE, ComposeError, Healthcheck, Service, load
from tests.hosts.netns import Host, Network
from tests.hosts.procs import VENV_BIN, HostsTransport, Postgres, Proc
from tests.hosts.system import HostsError

STANDIN_MC = Path(__file__).with_name("standin_mc.py")


class Probe:
    """A health probe: called until it answers True or `deadline_s` has passed."""

    deadline_s = 60.0

    def __call__(self) -> bool:
        raise NotImplementedError


class CommandProbe(Probe):
    """The service's own healthcheck test, run in its host with its environment."""

    def __init__(
        self, host: Host, check: Healthcheck, env: dict[str, str], program: Callable[[str], str]
    ) -> None:
        self.host, self.check, self.env = host, check, env
        self.argv = [program(check.test[0]), *check.test[1:]]
        self.deadline_s = max(check.deadline_s, 30.0)

    def __call__(self) -> bool:
        try:
            # Stretched: a test machine's cores are shared, and a probe that starts Python (and imports
            # mediajobs) can take longer there than the file allows in a container of its own.
            self.host.run(self.argv, env=self.env, timeout_s=max(self.check.timeout_s, 60.0))
        except (HostsError, OSError, subprocess.TimeoutExpired):
            return False
        return True


class HttpProbe(Probe):
    def __init__(self, url: str) -> None:
        self.url = url

    def __call__(self) -> bool:
        try:
            return httpx.get(self.url, timeout=2).status_code < 500
        except httpx.HTTPError:
            return False


class ComposeStack:
    """The services of a compose file, each running in its host, started as `docker compose up` would."""

    def __init__(self, services: dict[str, Service], network: Network) -> None:
        self.services = services
        self.network = network
        self.procs: dict[str, Proc] = {}
        # starting | started | running (no healthcheck) | healthy | completed | failed: <why>
        self.status: dict[str, str] = {}
        self.timeline: list[tuple[float, str, str]] = []
        self._lock = threading.Lock()
        # What others wait to see completed runs to its end; everything else keeps running.
        self.one_shots = {
            d
            for s in services.values()
            for d, c in s.depends_on.items()
            if c == "service_completed_successfully"
        }

    @classmethod
    def up(
        cls, variables: Mapping[str, str], *, path: Path = COMPOSE_FILE, extra_hosts: tuple[str, ...] = ()
    ) -> ComposeStack:
        services = load(path, variables)
        network = Network.create()
        stack = cls(services, network)
        try:
            for name in [*services, *extra_hosts]:
                network.add_host(name)
            stack._start_all()
        except BaseException:
            stack.down()
            raise
        return stack

    def __enter__(self) -> ComposeStack:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.down()

    def host(self, name: str) -> Host:
        return self.network.hosts[name]

    def client(self, *, base_url: str = "", headers: dict[str, str] | None = None) -> httpx.Client:
        """A client outside the hosts that resolves their names (`api`, `minio`, ...) as they do."""
        return httpx.Client(
            base_url=base_url, transport=HostsTransport(self.network), timeout=30, headers=headers
        )

    def _start_all(self, timeout_s: float = 240.0) -> None:
        pending = list(self.services)
        deadline = time.monotonic() + timeout_s
        while pending or any(s in ("starting", "started") for s in self._statuses().values()):
            self._raise_failures()
            for name in list(pending):
                if all(self._satisfied(d, c) for d, c in self.services[name].depends_on.items()):
                    self._set(name, "starting")
                    pending.remove(name)
                    threading.Thread(
                        target=self._run, args=(self.services[name],), daemon=True, name=f"compose-{name}"
                    ).start()
            if time.monotonic() > deadline:
                raise ComposeError(f"the stack did not come up, waiting: {pending}\n{self.history()}")
            time.sleep(0.1)
        self._raise_failures()

    def history(self) -> str:
        """When each service reached each status, in seconds from the first."""
        with self._lock:
            start = self.timeline[0][0] if self.timeline else 0.0
            return "\n".join(f"{at - start:7.2f} s  {name}: {status}" for at, name, status in self.timeline)

    def _statuses(self) -> dict[str, str]:
        with self._lock:
            return dict(self.status)

    def _set(self, name: str, status: str) -> None:
        with self._lock:
            self.status[name] = status
            self.timeline.append((time.monotonic(), name, status))

    def _satisfied(self, dependency: str, condition: str) -> bool:
        status = self._statuses().get(dependency)
        if condition == "service_started":
            return status not in (None, "starting")
        if condition == "service_healthy":
            return status == "healthy"
        if condition == "service_completed_successfully":
            return status == "completed"
        raise ComposeError(f"unknown depends_on condition {condition}")

    def _raise_failures(self) -> None:
        failed = {n: s for n, s in self._statuses().items() if s.startswith("failed")}
        if failed:
            logs = "\n".join(f"--- {n} ---\n{self.procs[n].log(3000)}" for n in failed if n in self.procs)
            raise ComposeError(f"services failed: {failed}\n{self.history()}\n{logs}")

    def _run(self, service: Service) -> None:
        """Start the service (its stand-in), then follow it to healthy, completed or failed."""
        try:
            proc, health = self._launch(service)
            self._set(service.name, "started")
            if service.name in self.one_shots:  # it has to exit 0
                code = proc.wait_exit(120)
                self._set(service.name, "completed" if code == 0 else f"failed: exited {code}")
            elif health is None:
                self._set(service.name, "running")
            else:
                self._watch_health(service, proc, health)
        except Exception as exc:
            self._set(service.name, f"failed: {type(exc).__name__}: {exc}")

    def _launch(self, service: Service) -> tuple[Proc, Probe | None]:
        host = self.host(service.name)
        env = base_env(**service.environment)
        env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '/usr/bin:/bin')}"
        if service.secrets:
            host.secrets = host.root / "secrets"
            host.secrets.mkdir(mode=0o700, exist_ok=True)
            for name, value in service.secrets.items():
                (host.secrets / name).write_text(value)
        health: Probe | None = None
        if service.healthcheck is not None:
            health = CommandProbe(host, service.healthcheck, env, self._program)
        if service.build:
            argv = [self._program(service.command[0]), *service.command[1:]]
            proc = Proc(host, service.name, argv, env)
        elif service.repository == "postgres":
            postgres = Postgres(
                host,
                user=env.get("POSTGRES_USER", "postgres"),
                password=env["POSTGRES_PASSWORD"],
                database=env.get("POSTGRES_DB") or env.get("POSTGRES_USER", "postgres"),
            )
            postgres.start()
            self.procs[service.name] = postgres.proc  # type: ignore[assignment]
            postgres.create_database()  # the image makes POSTGRES_DB before it listens on the network
            assert postgres.proc is not None
            proc = postgres.proc
        elif service.repository == "redis":
            proc = Proc(host, service.name, [*service.entrypoint, *service.command] or ["redis-server"], env)
        elif service.repository == "minio/minio":
            moto = [str(VENV_BIN / "moto_server"), "-H", "0.0.0.0", "-p", "9000"]
            proc = Proc(host, service.name, moto, env)
            # `mc ready local` has no mc to run here: an S3 request to the stand-in takes its place.
            health = HttpProbe(f"http://{host.address}:9000/")
        elif service.repository == "minio/mc":
            if service.entrypoint:  # a script calling mc: the stand-in is `mc` on its PATH
                tools = host.root / "bin"
                tools.mkdir(exist_ok=True)
                (tools / "mc").write_text(f'#!/bin/sh\nexec {sys.executable} {STANDIN_MC} "$@"\n')
                (tools / "mc").chmod(0o755)
                env["PATH"] = f"{tools}:{env['PATH']}"
                proc = Proc(host, service.name, [*service.entrypoint, *service.command], env)
            else:
                proc = Proc(host, service.name, [sys.executable, str(STANDIN_MC), *service.command], env)
        else:
            raise ComposeError(f"{service.name}: no stand-in for the image {service.image}")
        self.procs[service.name] = proc
        if proc.popen is None:
            proc.start()
        return proc, health

    @staticmethod
    def _program(name: str) -> str:
        """The image's programs (python, mediajobs, celery) are this checkout's virtualenv's."""
        if name == "python":
            return sys.executable
        local = VENV_BIN / name
        return str(local) if local.exists() else name

    def _watch_health(self, service: Service, proc: Proc, health: Probe) -> None:
        # Polled more often than `interval` says: the outcome (healthy, or not within compose's patience) is
        # what is tested, not compose's timing.
        ends = time.monotonic() + health.deadline_s
        while time.monotonic() < ends:
            if not proc.alive:
                self._set(service.name, f"failed: exited {proc.popen and proc.popen.returncode}")
                return
            if health():
                self._set(service.name, "healthy")
                return
            time.sleep(0.3)
        self._set(service.name, f"failed: not healthy within {health.deadline_s:g} s")

    def down(self) -> None:
        """Everything stops: mediajobs at once, PostgreSQL with its fast shutdown; then the hosts go."""
        for name, proc in self.procs.items():
            if self.services[name].build:
                proc.host.kill_all()
            proc.stop(timeout_s=10)
        self.network.destroy()
