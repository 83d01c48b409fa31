from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import httpx

from mediajobs.testing.stacks import Stack
from tests.conftest import submit, wait_state


def test_add_job_is_accepted_then_succeeds_with_the_sum(api: httpx.Client) -> None:
    started = time.monotonic()
    response = api.post("/api/v1/jobs", json={"kind": "test.add", "params": {"x": 2, "y": 3}})
    assert response.status_code == 202
    assert time.monotonic() - started < 2.0
    job = response.json()
    assert response.headers["location"] == f"/api/v1/jobs/{job['id']}"
    assert job["state"] == "queued" and job["attempt"] == 1 and job["queue"] == "default"
    assert job["created_at"].endswith("Z")
    done = wait_state(api, job["id"], "succeeded", "failed")
    assert done["state"] == "succeeded"
    assert done["result"] == 5
    assert done["progress"] == 100.0
    assert done["started_at"] and done["finished_at"] and done["error"] is None


def test_list_filters_and_cursor_pagination_cover_every_job_once(api: httpx.Client) -> None:
    ids = [submit(api, "test.add", {"x": i, "y": 0.5})["id"] for i in range(7)]
    submit(api, "test.sleep", {"seconds": 0})
    for job_id in ids:
        wait_state(api, job_id, "succeeded")
    seen: list[str] = []
    cursor = None
    while True:
        params = {"kind": "test.add", "state": "succeeded", "limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = api.get("/api/v1/jobs", params=params).json()
        assert len(page["items"]) <= 3
        assert all(j["kind"] == "test.add" and j["state"] == "succeeded" for j in page["items"])
        seen += [j["id"] for j in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen))
    assert set(ids) <= set(seen)
    # Newest first: our seven appear in reverse submission order.
    ours = [i for i in seen if i in ids]
    assert ours == list(reversed(ids))


def test_idempotency_key_returns_the_first_answer_and_creates_nothing_new(api: httpx.Client) -> None:
    key = uuid.uuid4().hex
    body = {"kind": "test.add", "params": {"x": 1, "y": 1}}
    first = api.post("/api/v1/jobs", json=body, headers={"Idempotency-Key": key})
    second = api.post("/api/v1/jobs", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json()
    assert second.headers["location"] == first.headers["location"]
    other = api.post("/api/v1/jobs", json=body, headers={"Idempotency-Key": key + "-other"})
    assert other.json()["id"] != first.json()["id"]


def test_events_stream_progress_and_end_after_the_terminal_state(api: httpx.Client) -> None:
    job = submit(api, "test.long_task", {"seconds": 2.5})
    events = []
    with api.stream("GET", f"/api/v1/jobs/{job['id']}/events", timeout=30) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        kind = None
        for line in response.iter_lines():
            if line.startswith("event:"):
                kind = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                assert kind == "job"
                events.append(json.loads(line[5:]))
    assert events[-1]["state"] == "succeeded"
    running = [e for e in events if e["state"] == "running"]
    progresses = [e["progress"] for e in running]
    assert progresses == sorted(progresses)
    assert len({e["stage"] for e in running}) >= 4
    assert any(e["eta_seconds"] is not None for e in running)
    stages = " ".join(e["stage"] for e in running)
    for name in ("Preparing", "Downloading", "Processing", "Uploading", "Finishing"):
        assert name in stages


def test_permanent_error_fails_at_once_with_its_code(api: httpx.Client) -> None:
    job = submit(api, "tests.permanent")
    done = wait_state(api, job["id"], "failed", "succeeded")
    assert done["state"] == "failed"
    assert done["attempt"] == 1
    assert done["error"] == {"code": "unsupported_media", "message": "the file is a text file, not a video"}


def test_handler_bug_fails_with_internal_code(api: httpx.Client) -> None:
    done = wait_state(api, submit(api, "tests.crash")["id"], "failed")
    assert done["error"]["code"] == "internal"
    assert "ZeroDivisionError" in done["error"]["message"]


def test_transient_errors_are_retried_with_backoff_until_success(api: httpx.Client, tmp_path: Path) -> None:
    counter = str(tmp_path / "runs")
    job = submit(api, "tests.flaky", {"fail_times": 2, "counter": counter})
    retrying = wait_state(api, job["id"], "retrying", "succeeded")
    assert retrying["state"] == "retrying"
    assert retrying["error"]["code"] == "source_unreachable"
    done = wait_state(api, job["id"], "succeeded", "failed")
    assert done["state"] == "succeeded"
    assert done["attempt"] == 3 and done["result"] == 3


def test_transient_errors_fail_after_max_attempts(api: httpx.Client, tmp_path: Path) -> None:
    counter = str(tmp_path / "runs")
    job = submit(api, "tests.flaky", {"fail_times": 5, "counter": counter}, max_attempts=2)
    done = wait_state(api, job["id"], "failed", "succeeded")
    assert done["attempt"] == 2
    assert done["error"]["code"] == "source_unreachable"


def test_retry_requeues_a_failed_job_as_a_new_attempt(api: httpx.Client) -> None:
    job = submit(api, "tests.permanent")
    wait_state(api, job["id"], "failed")
    response = api.post(f"/api/v1/jobs/{job['id']}/retry")
    assert response.status_code == 202
    assert response.json()["state"] == "queued" and response.json()["attempt"] == 2
    again = wait_state(api, job["id"], "failed")
    assert again["attempt"] == 2


def test_retry_of_a_running_job_is_a_conflict(api: httpx.Client) -> None:
    job = submit(api, "test.sleep", {"seconds": 20})
    wait_state(api, job["id"], "running")
    response = api.post(f"/api/v1/jobs/{job['id']}/retry")
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert "running" in response.json()["detail"]
    api.delete(f"/api/v1/jobs/{job['id']}")
    wait_state(api, job["id"], "cancelled")


def test_cancel_running_job_stops_it_and_cancel_again_is_a_noop(api: httpx.Client) -> None:
    job = submit(api, "test.sleep", {"seconds": 60})
    wait_state(api, job["id"], "running")
    response = api.delete(f"/api/v1/jobs/{job['id']}")
    assert response.status_code == 202
    assert response.json()["cancel_requested"] is True
    done = wait_state(api, job["id"], "cancelled", timeout_s=5)
    assert done["error"]["code"] == "cancelled"
    again = api.delete(f"/api/v1/jobs/{job['id']}")
    assert again.status_code == 200 and again.json()["state"] == "cancelled"


def test_bad_input_gets_specific_4xx_problems(api: httpx.Client) -> None:
    def problem(response: httpx.Response, status: int) -> dict[str, object]:
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/problem+json"
        body = response.json()
        assert body["status"] == status and body["title"] and body["detail"] and body["type"]
        return body  # type: ignore[no-any-return]

    body = problem(api.post("/api/v1/jobs", json={"kind": "nope.kind"}), 422)
    assert "nope.kind" in body["detail"] and body["errors"][0]["field"] == "kind"  # type: ignore[index]
    body = problem(api.post("/api/v1/jobs", json={"kind": "test.add", "params": {"x": "two", "y": 1}}), 422)
    assert [e["field"] for e in body["errors"]] == ["params.x"]  # type: ignore[union-attr]
    body = problem(api.post("/api/v1/jobs", json={"kind": "test.add", "params": {"x": 1}}), 422)
    assert [e["field"] for e in body["errors"]] == ["params.y"]  # type: ignore[union-attr]
    body = problem(api.post("/api/v1/jobs", json={"params": {}}), 422)
    assert body["errors"][0]["field"] == "kind"  # type: ignore[index]
    problem(
        api.post("/api/v1/jobs", json={"kind": "test.add", "params": {"x": 1, "y": 1}, "priority": 12}), 422
    )
    problem(
        api.post(
            "/api/v1/jobs", content=b'{"kind": "test.add", ', headers={"content-type": "application/json"}
        ),
        400,
    )
    problem(
        api.post(
            "/api/v1/jobs", content=b"x" * (2 * 1024 * 1024), headers={"content-type": "application/json"}
        ),
        413,
    )
    problem(api.get("/api/v1/jobs/not-a-uuid"), 404)
    problem(api.get(f"/api/v1/jobs/{uuid.uuid4()}"), 404)
    problem(api.delete(f"/api/v1/jobs/{uuid.uuid4()}"), 404)
    problem(api.post(f"/api/v1/jobs/{uuid.uuid4()}/retry"), 404)
    problem(api.get(f"/api/v1/jobs/{uuid.uuid4()}/events"), 404)
    problem(api.get("/api/v1/jobs", params={"state": "sleeping"}), 422)
    problem(api.get("/api/v1/jobs", params={"cursor": "garbage!"}), 422)
    problem(api.get("/api/v1/jobs", params={"limit": 501}), 422)


def test_metrics_count_jobs_by_state_and_queue_depth(api: httpx.Client, stack: Stack) -> None:
    wait_state(api, submit(api, "test.add", {"x": 1, "y": 2})["id"], "succeeded")
    text = httpx.get(f"{stack.api_url}/metrics").text
    assert 'mediajobs_jobs{kind="test.add",state="succeeded"}' in text
    assert 'mediajobs_queue_depth{queue="cpu"}' in text
    assert "mediajobs_job_duration_seconds_bucket" in text


def test_openapi_documents_the_jobs_api(stack: Stack) -> None:
    spec = httpx.get(f"{stack.api_url}/openapi.json").json()
    assert "/api/v1/jobs" in spec["paths"] and "/api/v1/jobs/{job_id}/events" in spec["paths"]
    assert httpx.get(f"{stack.api_url}/docs").status_code == 200
