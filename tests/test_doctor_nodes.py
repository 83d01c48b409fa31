"""`doctor` on any host names each setting that an API or worker process does not share with the others."""

from __future__ import annotations

import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mediajobs.config import Settings
from mediajobs.db.session import get_db
from mediajobs.nodes import survey
from mediajobs.testing.servers import RedisServer, wait_for
from mediajobs.testing.stacks import Stack
from tests.conftest import MakeStack


def doctor(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mediajobs", "doctor"], env=env, capture_output=True, text=True, timeout=120
    )


def settings_of(env: dict[str, str]) -> Settings:
    values = {k.removeprefix("MEDIAJOBS_").lower(): v for k, v in env.items() if k.startswith("MEDIAJOBS_")}
    return Settings(_env_file=None, **values)  # type: ignore[arg-type,call-arg]


def test_doctor_names_the_database_broker_storage_and_kind_modules_a_process_does_not_share(
    make_stack: MakeStack, redis_server: RedisServer, tmp_path: Path
) -> None:
    stack = make_stack(workers=0)  # an API
    assert stack.api is not None
    env = stack.env
    other_storage = f"file://{tmp_path / 'elsewhere'}"
    other_database = f"sqlite:///{tmp_path / 'other' / 'mediajobs.db'}"
    other_broker = redis_server.new_url()
    # Hosts configured by hand, each with its own mistake; the one on another database has its own schema.
    hosts = {
        "storage": {
            "MEDIAJOBS_STORAGE_URL": other_storage,
            "MEDIAJOBS_KIND_MODULES": "tests.kinds,tests.fanout_kinds",
        },
        "database": {"MEDIAJOBS_DATABASE_URL": other_database},
        "broker": {"MEDIAJOBS_BROKER_URL": other_broker},
    }
    subprocess.run(
        [sys.executable, "-m", "mediajobs", "migrate"], env={**env, **hosts["database"]}, check=True
    )

    def start(item: str) -> tuple[Stack, str]:
        (tmp_path / item).mkdir()
        host = Stack(tmp_path / item, {**env, **hosts[item]})
        proc = host.start_worker("default", 1)
        return host, f"default.{proc.pid}@{socket.gethostname()}"

    with ThreadPoolExecutor(3) as pool:
        started = dict(zip(hosts, pool.map(start, hosts), strict=True))
    names = {item: name for item, (_, name) in started.items()}
    try:
        # Seen from the stack: in its database, its broker or both, once they have recorded themselves.
        settings = settings_of(env)
        db = get_db(settings.effective_database_url)
        wait_for(
            lambda: {v.name for v in survey(db, settings)[0]} >= set(names.values()),
            message="the three workers' node records",
        )
        with ThreadPoolExecutor(2) as pool:
            seen, other_side = pool.map(doctor, [env, {**env, **hosts["database"]}])
        assert seen.returncode == 1, seen.stdout
        out = seen.stdout
        storage = settings_of(env).effective_storage_url
        database = settings_of(env).effective_database_url
        assert f"worker {names['storage']}: storage {other_storage} differs from {storage}" in out, out
        assert (
            f"worker {names['storage']}: kind modules tests.fanout_kinds,tests.kinds differs from tests.kinds"
            in out
        )
        assert f"worker {names['database']}: database {other_database} differs from {database}" in out
        broker = env["MEDIAJOBS_BROKER_URL"]
        assert f"worker {names['broker']}: broker {other_broker} differs from {broker}" in out
        assert "4 problem(s)" in out
        # The API, which agrees, is not named.
        api = f"api {env['MEDIAJOBS_PORT']}.{stack.api.pid}@{socket.gethostname()}"
        assert api not in out

        # On the host with the other database, doctor sees the others through the broker they share.
        out = other_side.stdout
        assert f"{api}: database {database} differs from {other_database}" in out, out
    finally:
        for host, _ in started.values():
            host.stop()
