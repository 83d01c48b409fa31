"""Fan-out and fan-in: child jobs started by a handler, their parent ended by the last, no slot held."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import BACKENDS, database_url, submit, wait_state
from tests.servers import RedisServer, Stack, base_env, wait_for

MAX_CHILDREN = 20


@pytest.fixture(scope="module")
def stacks(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[dict[str, Stack]]:
    """Per backend, an API and two workers of one slot each, with the fan-out kinds; their own Redis."""
    broker = RedisServer(tmp_path_factory.mktemp("fan-redis")).start()
    made: dict[str, Stack] = {}

    def make(backend: str) -> Stack:
        if backend not in made:
            directory = tmp_path_factory.mktemp(f"fan-{backend}")
            values = {
                "MEDIAJOBS_DATABASE_URL": database_url(backend, directory, request),
                "MEDIAJOBS_BROKER_URL": broker.new_url(),
                "MEDIAJOBS_KIND_MODULES": "tests.kinds,tests.fanout_kinds",
                "MEDIAJOBS_MAX_CHILDREN": str(MAX_CHILDREN),
                "MEDIAJOBS_HEARTBEAT_INTERVAL_S": "0.5",
                "MEDIAJOBS_HEARTBEAT_TIMEOUT_S": "3",
                "MEDIAJOBS_SHUTDOWN_GRACE_S": "1",
                "MEDIAJOBS_RETRY_BACKOFF_BASE_S": "0.3",
                "MEDIAJOBS_TEMP_DIR": str(directory / "tmp"),
            }
            stack = made[backend] = Stack(directory, base_env(**values))
            stack.start_api()
            stack.start_worker("io,cpu,default", 1)
            stack.start_worker("io,cpu,default", 1)
        return made[backend]

    made_by: Any = make
    yield made_by
    for stack in made.values():
        stack.stop()
    broker.stop()


def children_of(api: httpx.Client, parent_id: str) -> list[dict[str, Any]]:
    response = api.get("/api/v1/jobs", params={"parent_id": parent_id, "limit": 500})
    assert response.status_code == 200, response.text
    return response.json()["items"]  # type: ignore[no-any-return]


def runs_of(path: Path) -> list[list[str]]:
    """The lines `job attempt index pid` the children wrote, split."""
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.parametrize("backend", BACKENDS)
def test_twenty_children_over_two_workers_end_their_parent_though_a_child_worker_is_killed(
    stacks: Any, tmp_path: Path, backend: str
) -> None:
    stack: Stack = stacks(backend)
    runs = tmp_path / "runs"
    with stack.client() as api:
        parent = submit(api, "fan.split", {"n": 20, "runs": str(runs), "seconds": 0.7, "join": True})
        assert parent["parent_id"] is None and parent["children"] is None
        # Both slots run children at once: the waiting parent holds neither.
        wait_for(
            lambda: len({r[3] for r in runs_of(runs)}) == 2,
            timeout_s=20,
            message="both slots to run children",
        )
        waiting = api.get(f"/api/v1/jobs/{parent['id']}").json()
        assert waiting["state"] == "running"
        assert waiting["children"]["total"] == 20
        assert sum(n for state, n in waiting["children"].items() if state != "total") == 20
        stack.kill_worker(stack.workers[0])
        stack.start_worker("io,cpu,default", 1)
        done = wait_state(api, parent["id"], "succeeded", "failed", "cancelled", timeout_s=90)
        children = children_of(api, parent["id"])
    assert done["state"] == "succeeded", done
    assert done["result"] == sum(range(20))  # fan.join saw every child's result, in order
    assert done["children"] == {"total": 20, "succeeded": 20}
    assert done["progress"] == 100.0
    assert len(children) == 20
    assert {c["parent_id"] for c in children} == {parent["id"]}
    assert all(c["children"] is None and c["state"] == "succeeded" for c in children)
    # The killed worker's child was reaped and run again; the parent was not.
    assert any(c["attempt"] == 2 for c in children), [c["attempt"] for c in children]
    assert sorted(int(r[2]) for r in runs_of(runs) if r[1] == "1") == list(range(20))


def start_weighted(api: httpx.Client, runs: Path) -> dict[str, Any]:
    """A parent of three children: the first (weight 2) ends at once, the other two run for 30 s."""
    parent = submit(api, "fan.split", {"n": 3, "runs": str(runs), "seconds": 30, "slow_from": 1})

    def two_running() -> dict[str, Any] | None:
        job = api.get(f"/api/v1/jobs/{parent['id']}").json()
        return job if job["children"] == {"total": 3, "succeeded": 1, "running": 2} else None

    return wait_for(two_running, timeout_s=20, message="one child done, two running")  # type: ignore[no-any-return]


def test_parent_progress_is_the_weighted_sum_of_its_childrens(stacks: Any, tmp_path: Path) -> None:
    with stacks("sqlite").client() as api:
        job = start_weighted(api, tmp_path / "runs")
        assert job["state"] == "running"
        # (2 * 100 + 1 * 0 + 1 * 0) / 4 while the running two report 0 (their first step lasts 6 s).
        assert job["progress"] == 50.0
        api.delete(f"/api/v1/jobs/{job['id']}")


def test_cancelling_a_waiting_parent_cancels_its_children(stacks: Any, tmp_path: Path) -> None:
    with stacks("sqlite").client() as api:
        job = start_weighted(api, tmp_path / "runs")
        response = api.delete(f"/api/v1/jobs/{job['id']}")
        assert response.status_code == 202, response.text
        done = wait_state(api, job["id"], "cancelled", "failed", "succeeded", timeout_s=10)
        children = children_of(api, job["id"])
    assert done["state"] == "cancelled"
    assert done["error"]["code"] == "cancelled"
    assert done["children"] == {"total": 3, "succeeded": 1, "cancelled": 2}
    assert sorted(c["state"] for c in children) == ["cancelled", "cancelled", "succeeded"]


def test_failed_child_fails_the_parent_with_its_code_and_retry_reruns_only_the_others(
    stacks: Any, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    Path(f"{runs}.fail-2").touch()
    with stacks("sqlite").client() as api:
        parent = submit(api, "fan.split", {"n": 4, "runs": str(runs), "seconds": 0.5, "join": True})
        failed = wait_state(api, parent["id"], "failed", "succeeded", timeout_s=30)
        assert failed["state"] == "failed"
        assert failed["error"]["code"] == "unsupported_media"
        assert "chunk 2 is broken" in failed["error"]["message"]
        wait_for(
            lambda: all(
                c["state"] in ("succeeded", "failed", "cancelled") for c in children_of(api, parent["id"])
            ),
            timeout_s=10,
            message="every child to end",
        )
        before = {c["id"]: c["state"] for c in children_of(api, parent["id"])}
        Path(f"{runs}.fail-2").unlink()
        retried = api.post(f"/api/v1/jobs/{parent['id']}/retry")
        assert retried.status_code == 202, retried.text
        assert retried.json()["state"] == "running"
        done = wait_state(api, parent["id"], "succeeded", "failed", timeout_s=30)
    assert done["state"] == "succeeded", done
    assert done["result"] == 0 + 1 + 2 + 3
    runs_by_child: dict[str, int] = {}
    for job_id, *_ in runs_of(runs):
        runs_by_child[job_id] = runs_by_child.get(job_id, 0) + 1
    for child_id, state in before.items():
        if state == "succeeded":
            assert runs_by_child[child_id] == 1  # not run again
        else:
            assert runs_by_child.get(child_id, 0) >= 1  # the failed (or cancelled) ones ran on the retry
    assert "failed" in before.values()


def test_invalid_child_params_fail_the_parent_with_invalid_params_and_start_no_child(
    stacks: Any, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    with stacks("sqlite").client() as api:
        parent = submit(api, "fan.split", {"n": 3, "runs": str(runs), "bad_child": True})
        done = wait_state(api, parent["id"], "failed", "succeeded", timeout_s=20)
        assert done["error"]["code"] == "invalid_params"
        assert "child 2" in done["error"]["message"] and "index" in done["error"]["message"]
        assert done["children"] is None
        assert children_of(api, parent["id"]) == []
    assert not runs.exists()


def test_more_children_than_max_children_fails_with_too_many_children(stacks: Any, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    with stacks("sqlite").client() as api:
        parent = submit(api, "fan.split", {"n": MAX_CHILDREN + 1, "runs": str(runs)})
        done = wait_state(api, parent["id"], "failed", "succeeded", timeout_s=20)
        assert done["error"]["code"] == "too_many_children"
        assert f"{MAX_CHILDREN + 1} child jobs" in done["error"]["message"]
        assert "MEDIAJOBS_MAX_CHILDREN" in done["error"]["message"]
        assert children_of(api, parent["id"]) == []
        assert children_of(api, str(uuid.uuid4())) == []
    assert not runs.exists()
