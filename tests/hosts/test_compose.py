"""deploy/compose.yaml does what it says: its services, commands, variables, names and dependencies make a
stack that turns an upload into a ready asset (the images aside: see tests/hosts/compose.py)."""

from __future__ import annotations

import fnmatch
import json
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mediajobs.testing.stacks import base_env
from tests.hosts.compose import ComposeStack
from tests.hosts.composefile import COMPOSE_FILE, ENV_EXAMPLE, ComposeError, interpolate, load, read_env_file
from tests.hosts.conftest import require_hosts
from tests.hosts.procs import VENV_BIN
from tests.media_api.helpers import check_plays, get_media, wait_job

SERVICES = {"api", "worker-cpu", "worker-io", "postgres", "redis", "minio", "flower"}


@pytest.fixture(scope="module")
def variables() -> dict[str, str]:
    """deploy/.env.example with every example secret replaced, as the file tells its reader to."""
    return own_secrets(read_env_file(ENV_EXAMPLE))


def own_secrets(example: dict[str, str]) -> dict[str, str]:
    def replace(value: str) -> str:
        return secrets.token_urlsafe(16) if value.startswith("change-me") else value

    values = {name: replace(value) for name, value in example.items()}
    user, _, password = example["FLOWER_BASIC_AUTH"].partition(":")
    values["FLOWER_BASIC_AUTH"] = f"{user}:{replace(password)}"
    return values


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
        values = {services[n].environment[variable] for n in ("api", "worker-cpu", "worker-io")}
        assert len(values) == 1, (variable, values)
    # Flower needs the broker and the kinds only: no database or bucket credentials, its own password.
    flower = services["flower"].environment
    for variable in ("MEDIAJOBS_BROKER_URL", "MEDIAJOBS_KIND_MODULES"):
        assert flower[variable] == services["api"].environment[variable]
    assert not {"MEDIAJOBS_DATABASE_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} & set(flower)
    text = COMPOSE_FILE.read_text()
    for secret in (
        "POSTGRES_PASSWORD",
        "REDIS_PASSWORD",
        "MINIO_ROOT_PASSWORD",
        "MINIO_APP_PASSWORD",
        "MEDIAJOBS_API_KEYS",
    ):
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
    assert compose_stack.status["check-secrets"] == "completed"
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


def test_compose_redis_takes_its_password_from_a_file_not_its_command_line(
    compose_stack: ComposeStack, variables: dict[str, str]
) -> None:
    redis = compose_stack.procs["redis"]
    server = next(
        pid
        for pid in compose_stack.host("redis").pids()
        if Path(f"/proc/{pid}/comm").read_text().strip() == "redis-server"
    )
    password = variables["REDIS_PASSWORD"]
    assert password.encode() not in Path(f"/proc/{server}/cmdline").read_bytes()
    assert password.encode() not in Path(f"/proc/{server}/environ").read_bytes()
    address = compose_stack.host("redis").address
    ask = ["redis-cli", "-h", address, "ping"]
    assert "NOAUTH" in subprocess.run(ask, capture_output=True, text=True, timeout=10).stdout
    authed = subprocess.run(ask, capture_output=True, text=True, timeout=10, env={"REDISCLI_AUTH": password})
    assert authed.stdout.strip() == "PONG", (authed, redis.log(500))


def test_compose_app_user_holds_a_policy_for_its_bucket_only(
    compose_stack: ComposeStack, variables: dict[str, str]
) -> None:
    """What the `bucket` service asked MinIO for (recorded by the stand-in mc: moto's S3 server does not model
    MinIO's users and policies, so that MinIO enforces the policy is not checked here)."""
    state = json.loads((compose_stack.host("bucket").data / "mc-admin.json").read_text())
    app = variables["MINIO_APP_USER"]
    assert app != variables["MINIO_ROOT_USER"]
    assert state["users"][app]["password"] == variables["MINIO_APP_PASSWORD"]
    (policy,) = state["users"][app]["policies"]
    bucket = variables["MEDIAJOBS_BUCKET"]
    document = state["policies"][policy]
    assert allowed(document, "s3:PutObject", f"arn:aws:s3:::{bucket}/media/x/source.mp4")
    assert allowed(document, "s3:ListBucket", f"arn:aws:s3:::{bucket}")
    for action in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket", "s3:CreateBucket"):
        assert not allowed(document, action, "arn:aws:s3:::other-bucket/key"), action
        assert not allowed(document, action, "arn:aws:s3:::other-bucket"), action
        assert not allowed(document, action, f"arn:aws:s3:::{bucket}-other/key"), action
    for action in ("s3:DeleteBucket", "s3:PutBucketPolicy", "admin:CreateUser"):
        assert not allowed(document, action, f"arn:aws:s3:::{bucket}"), action


def allowed(document: dict[str, Any], action: str, resource: str) -> bool:
    """Whether an Allow statement of `document` matches (IAM wildcards), and no Deny does."""

    def matches(patterns: str | list[str], value: str) -> bool:
        return any(
            fnmatch.fnmatchcase(value, p) for p in ([patterns] if isinstance(patterns, str) else patterns)
        )

    hits = [
        s for s in document["Statement"] if matches(s["Action"], action) and matches(s["Resource"], resource)
    ]
    return any(s["Effect"] == "Allow" for s in hits) and not any(s["Effect"] == "Deny" for s in hits)


def test_consoles_answer_on_loopback_only(variables: dict[str, str]) -> None:
    services = load(COMPOSE_FILE, variables)
    for name in ("flower", "minio"):
        assert services[name].ports, f"{name} publishes nothing"
        for port in services[name].ports:
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
    others = {n: s.ports for n, s in services.items() if n not in ("api", "flower", "minio") and s.ports}
    assert not others, others


def test_images_are_pinned_by_version(variables: dict[str, str]) -> None:
    for service in load(COMPOSE_FILE, variables).values():
        if service.build:
            continue
        tag = service.image.rpartition(":")[2]
        assert ":" in service.image and tag != "latest", f"{service.name}: {service.image} is not pinned"
        if service.repository.startswith("minio/"):
            assert tag.startswith("RELEASE.20"), service.image
        else:
            assert tag.split("-")[0].count(".") >= 1, f"{service.name}: {service.image} pins only a major"


def test_the_example_secrets_stop_the_stack_before_anything_starts(variables: dict[str, str]) -> None:
    example = read_env_file(ENV_EXAMPLE)
    services = load(COMPOSE_FILE, example)
    check = services["check-secrets"]
    refused = subprocess.run(
        [sys.executable, *check.command[1:]],
        env=base_env(**check.environment),
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 1
    for name in ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "MINIO_ROOT_PASSWORD", "MINIO_APP_PASSWORD"):
        assert name in refused.stderr, refused.stderr
    assert "MEDIAJOBS_API_KEYS" in refused.stderr and "FLOWER_BASIC_AUTH" in refused.stderr
    assert example["POSTGRES_PASSWORD"] not in refused.stderr

    own = load(COMPOSE_FILE, variables)["check-secrets"]
    passed = subprocess.run(
        [sys.executable, *own.command[1:]], env=base_env(**own.environment), capture_output=True, text=True
    )
    assert passed.returncode == 0, passed.stderr

    def waits_for_check(name: str) -> bool:
        depends = services[name].depends_on
        return depends.get("check-secrets") == "service_completed_successfully" or any(
            waits_for_check(d) for d in depends
        )

    assert all(waits_for_check(name) for name in services if name != "check-secrets")


def test_the_app_never_holds_minios_root_credentials(variables: dict[str, str]) -> None:
    services = load(COMPOSE_FILE, variables)
    for name in ("api", "worker-cpu", "worker-io"):
        environment = services[name].environment
        assert environment["AWS_ACCESS_KEY_ID"] == variables["MINIO_APP_USER"]
        assert environment["AWS_SECRET_ACCESS_KEY"] == variables["MINIO_APP_PASSWORD"]
    holders = {
        name
        for name, service in services.items()
        if any(variables["MINIO_ROOT_PASSWORD"] in value for value in service.environment.values())
    }
    # check-secrets only looks at it, and exits.
    assert holders == {"minio", "bucket", "check-secrets"}
