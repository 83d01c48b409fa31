"""deploy/compose.yaml does what it says: its services, commands, variables, names and dependencies make a
stack that turns an upload into a ready asset (the images aside: see tests/hosts/compose.py)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hosts.compose import ComposeStack
from tests.hosts.composefile import COMPOSE_FILE, ENV_EXAMPLE, ComposeError, interpolate, load, read_env_file
from tests.hosts.conftest import require_hosts
from tests.hosts.procs import VENV_BIN
from tests.media_api.helpers import check_plays, get_media, wait_job
from tests.servers import base_env

SERVICES = {"api", "worker-cpu", "worker-io", "postgres", "redis", "minio", "flower"}


@pytest.fixture(scope="module")
def variables() -> dict[str, str]:
    return read_env_file(ENV_EXAMPLE)


@pytest.fixture(scope="module")
def compose_stack(variables: dict[str, str]) -> Iterator[ComposeStack]:
    require_hosts()
    with ComposeStack.up(variables, extra_hosts=("client",)) as started:
        yield started


def test_every_service_has_a_healthcheck_and_secrets_come_only_from_the_env_file(
    variables: dict[str, str],
) -> None:
    services = load(COMPOSE_FILE, variables)
    assert set(services) >= SERVICES
    for name in SERVICES:
        assert services[name].healthcheck is not None, f"{name} has no healthcheck"
    assert "/readyz" in " ".join(services["api"].healthcheck.test)  # type: ignore[union-attr]
    assert services["flower"].command[:4] == ["celery", "-A", "mediajobs.worker", "flower"]
    # What must be the same everywhere is the same in every part that runs mediajobs.
    shared = (
        "MEDIAJOBS_DATABASE_URL",
        "MEDIAJOBS_BROKER_URL",
        "MEDIAJOBS_STORAGE_URL",
        "MEDIAJOBS_KIND_MODULES",
    )
    for variable in shared:
        values = {services[n].environment[variable] for n in ("api", "worker-cpu", "worker-io", "flower")}
        assert len(values) == 1, (variable, values)
    text = COMPOSE_FILE.read_text()
    for secret in ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "MINIO_ROOT_PASSWORD", "MEDIAJOBS_API_KEYS"):
        assert variables[secret] not in text, f"{secret}'s value is written in the compose file"
        with pytest.raises(ComposeError, match=secret):
            load(COMPOSE_FILE, {k: v for k, v in variables.items() if k != secret})


def test_interpolation_follows_compose() -> None:
    values = {"SET": "x", "EMPTY": ""}
    assert interpolate("${SET}-${EMPTY:-d}-${EMPTY-d}-${UNSET:-d}-$SET-$$SET", values) == "x-d--d-x-$SET"
    with pytest.raises(ComposeError, match="say why"):
        interpolate("${EMPTY:?say why}", values)


def test_compose_stack_turns_an_upload_into_a_ready_asset_through_the_api_named_api(
    compose_stack: ComposeStack, variables: dict[str, str], host_clips: dict[str, Path]
) -> None:
    assert set(compose_stack.status) >= SERVICES
    assert all(compose_stack.status[name] == "healthy" for name in SERVICES), compose_stack.status
    assert compose_stack.status["bucket"] == "completed"
    client = compose_stack.host("client")
    shutil.copy(host_clips["small"], client.data / "clip.mp4")
    key = variables["MEDIAJOBS_API_KEYS"].split(",")[0]
    cli_env = base_env(MEDIAJOBS_API_URL="http://api:8000", MEDIAJOBS_API_KEY=key)
    done = client.run(
        [str(VENV_BIN / "mediajobs"), "media", "upload", "clip.mp4", "--wait", "--json"],
        env=cli_env,
        timeout_s=120,
    )
    media = json.loads(done.stdout)
    assert media["state"] == "ready", media
    with compose_stack.client(base_url="http://api:8000", headers={"Authorization": f"Bearer {key}"}) as api:
        media = get_media(api, media["id"])
        check_plays(api, media)
        # The transcode ran on the cpu worker's host: the file routes the queues as it says.
        jobs = [
            wait_job(api, job_id, "succeeded", "failed", "cancelled", timeout_s=30)
            for job_id in media["jobs"]
        ]
        assert {j["kind"] for j in jobs} >= {"media.process"}, jobs
        assert all(j["state"] == "succeeded" for j in jobs), jobs
    rows = stack_sql(
        compose_stack, variables, "SELECT kind, worker FROM jobs WHERE media_id = %s", media["id"]
    )
    hosts = {kind: str(worker).split(":", 1)[0] for kind, worker in rows}
    assert hosts["media.process"] == "worker-cpu", hosts


def test_compose_flower_lists_both_workers_behind_its_password(
    compose_stack: ComposeStack, variables: dict[str, str]
) -> None:
    user, password = variables["FLOWER_BASIC_AUTH"].split(":", 1)
    with compose_stack.client() as flower:
        assert flower.get("http://flower:5555/api/workers").status_code == 401
        workers = flower.get("http://flower:5555/api/workers", params={"refresh": "1"}, auth=(user, password))
        assert workers.status_code == 200, workers.text
        assert {name.rsplit("@", 1)[1] for name in workers.json()} == {"worker-cpu", "worker-io"}, (
            workers.json()
        )


def stack_sql(
    compose_stack: ComposeStack, variables: dict[str, str], query: str, *params: object
) -> list[tuple[object, ...]]:
    import psycopg

    address = compose_stack.host("postgres").address
    url = f"postgresql://mediajobs:{variables['POSTGRES_PASSWORD']}@{address}:5432/mediajobs"
    with psycopg.connect(url, connect_timeout=5) as conn:
        return list(conn.execute(query, params).fetchall())  # type: ignore[arg-type]
