"""The example secrets of deploy/.env.example are refused at start (issue 17, item 8).

Seen before: a deploy that copied deploy/.env.example and changed nothing ran with `change-me-api-key` as its
API key. `up`, `api` and `worker` now exit non-zero, before anything starts, naming each variable that still
holds a `change-me…` value.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mediajobs.config import Settings
from mediajobs.testing.servers import free_port
from mediajobs.testing.stacks import base_env
from tests.hosts.composefile import ENV_EXAMPLE, read_env_file

EXAMPLE = read_env_file(ENV_EXAMPLE)


@pytest.mark.parametrize("command", [["up"], ["api"], ["worker", "--queues", "io"]])
@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MEDIAJOBS_API_KEYS", f"a-real-key-0123456789,{EXAMPLE['MEDIAJOBS_API_KEYS']}"),
        ("MEDIAJOBS_DATABASE_URL", f"postgresql://mediajobs:{EXAMPLE['POSTGRES_PASSWORD']}@127.0.0.1:1/x"),
        ("MEDIAJOBS_BROKER_URL", f"redis://:{EXAMPLE['REDIS_PASSWORD']}@127.0.0.1:1/0"),
    ],
)
def test_an_example_secret_is_refused_before_anything_starts(
    tmp_path: Path, command: list[str], variable: str, value: str
) -> None:
    env = base_env(MEDIAJOBS_DATA_DIR=str(tmp_path / "data"), MEDIAJOBS_PORT=str(free_port()))
    env[variable] = value

    done = subprocess.run(
        [sys.executable, "-m", "mediajobs", *command], env=env, cwd=tmp_path, capture_output=True, timeout=60
    )

    assert done.returncode != 0
    message = done.stderr.decode()
    assert variable in message and "change-me" in message and "secrets.token_urlsafe" in message, message
    assert value not in message  # the secret itself is not printed
    assert not (tmp_path / "data").exists(), "something started"


def test_only_values_that_start_like_the_examples_are_refused() -> None:
    assert Settings(api_keys="key-change-me-later", broker_url="redis://:pw@h/0").example_secrets() == []
    database = Settings(database_url="postgresql://u:change-me-x@h/d")
    assert database.example_secrets() == ["MEDIAJOBS_DATABASE_URL"]
    assert Settings(api_keys=" change-me ").example_secrets() == ["MEDIAJOBS_API_KEYS"]
