"""The suite's stack pool stops a stack that no test file asked for within its idle time, and only then."""

from __future__ import annotations

from pathlib import Path

import pytest

from mediajobs.testing.servers import RedisServer
from mediajobs.testing.stacks import Stack
from tests.stacks import MediaStack, StackPool, Stored


def test_a_stack_unasked_for_idle_s_is_stopped_when_a_file_ends(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> None:
    pool = StackPool(tmp_path_factory, request, RedisServer(tmp_path / "redis"), idle_s=100)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        pool.stacks[name] = MediaStack(name, "file", Stack(tmp_path / name, {}), Stored(root=tmp_path / name))
    pool.get("a")
    pool.get("b")
    assert pool.file_ended(now=0) == []  # both used by the file that ended at 0
    pool.get("a")
    assert pool.file_ended(now=60) == []  # "a" used again, up to 60
    assert pool.file_ended(now=99) == []
    assert pool.file_ended(now=100) == ["b"] and list(pool.stacks) == ["a"]
    assert pool.file_ended(now=159) == []
    assert pool.file_ended(now=160) == ["a"] and pool.stacks == {}
