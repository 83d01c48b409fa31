"""Every worker pool process runs under MEDIAJOBS_WORKER_MEMORY_BYTES of address space (RLIMIT_AS).

A job that goes over it fails with `resource_limit` and the worker goes on; the children a job starts
(ffmpeg, yt-dlp) still get MEDIAJOBS_CHILD_MEMORY_BYTES of their own.
"""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path
from typing import Any

from mediajobs.testing.servers import wait_for
from tests.conftest import MakeStack, submit, wait_state
from tests.egress.sites import running

GiB = 1024**3


def _pool_children(worker_pid: int) -> list[int]:
    children = Path(f"/proc/{worker_pid}/task/{worker_pid}/children").read_text().split()
    return [int(pid) for pid in children]


def _address_space_limit(pid: int) -> tuple[str, str]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max address space"):
            soft, hard = line.split()[3:5]
            return soft, hard
    raise AssertionError(f"no address space line for {pid}")


def _vm_peak(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmPeak:"):
            return int(line.split()[1]) * 1024
    return 0


def test_a_job_over_the_worker_memory_limit_fails_and_the_worker_goes_on(make_stack: MakeStack) -> None:
    limit = int(1.5 * GiB)
    stack = make_stack(workers=1, queues="io,cpu,default", concurrency=1, worker_memory_bytes=str(limit))
    worker = stack.workers[0]
    [child] = _pool_children(worker.pid)
    assert _address_space_limit(child) == (str(limit), "unlimited")
    with stack.client() as api:
        hog = wait_state(api, submit(api, "tests.hog", {"mib": 3 * 1024})["id"], "failed", "retrying")
        assert hog["error"]["code"] == "resource_limit", hog["error"]
        assert "MEDIAJOBS_WORKER_MEMORY_BYTES" in hog["error"]["message"]
        # The same pool process runs the next job: nothing died.
        done = wait_state(api, submit(api, "test.add", {"x": 1, "y": 2})["id"], "succeeded", "failed")
        assert done["state"] == "succeeded"
    assert worker.poll() is None and _pool_children(worker.pid) == [child]


def test_a_jobs_children_get_their_own_limit_above_the_pools(make_stack: MakeStack, tmp_path: Path) -> None:
    limit = int(1.5 * GiB)
    stack = make_stack(workers=1, concurrency=1, worker_memory_bytes=str(limit))
    pidfile = tmp_path / "pid"
    with stack.client() as api:
        job = submit(api, "tests.subprocess", {"seconds": 60, "pidfile": str(pidfile)})
        wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), message="the child's pid")
        child = int(pidfile.read_text())
        # MEDIAJOBS_CHILD_MEMORY_BYTES (4 GiB by default), above the pool process's own 1.5 GiB.
        assert _address_space_limit(child) == (str(4 * GiB), str(4 * GiB))
        api.delete(f"/api/v1/jobs/{job['id']}")
        wait_state(api, job["id"], "cancelled")


def test_imports_and_deliveries_work_under_the_default_limit(make_stack: MakeStack, tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    source = ["-f", "lavfi", "-i", "testsrc=duration=2:size=320x240:rate=25", "-pix_fmt", "yuv420p"]
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", *source, "-c:v", "libx264", str(clip)], check=True)
    stack = make_stack(
        workers=1,
        concurrency=2,
        import_allow_private="true",
        import_allowed_ports="*",
    )
    worker = stack.workers[0]
    for child in _pool_children(worker.pid):
        soft, _ = _address_space_limit(child)
        assert soft != "unlimited" and int(soft) >= 2 * GiB
    with running("127.0.0.1") as site, stack.client() as api:
        url = site.add("/clip.mp4", clip.read_bytes(), "video/mp4")
        hook = site.add("/hook", b"thanks", "text/plain")
        registered = api.post("/api/v1/webhooks", json={"url": hook, "events": ["media.ready"]})
        assert registered.status_code == 201, registered.text
        accepted = api.post("/api/v1/media/imports", json={"url": url, "pipeline": ["thumbnail"]})
        assert accepted.status_code == 202, accepted.text
        media_id = accepted.json()["media"]["id"]

        def ready() -> bool:
            media = api.get(f"/api/v1/media/{media_id}").json()
            assert media["state"] != "failed", media
            return bool(media["state"] == "ready")

        wait_for(ready, timeout_s=90, message="the import to be ready")
        wait_for(lambda: any(path == "/hook" for _, path, _ in site.requests), message="the webhook")
        listing = f"/api/v1/webhooks/{registered.json()['id']}/deliveries"

        def attempted() -> list[dict[str, Any]]:
            # The receiver has answered; the worker records the attempt once it has read that answer.
            items = api.get(listing).json()["items"]
            return list(items[0]["attempts"]) if items else []

        wait_for(lambda: bool(attempted()), message="the delivery attempt to be recorded")
        assert attempted()[0]["status_code"] == 200
    peaks = []
    for child in _pool_children(worker.pid):
        with contextlib.suppress(OSError):
            peaks.append(_vm_peak(child))
    assert peaks and max(peaks) < 2 * GiB, [p // 2**20 for p in peaks]  # MiB: about 350-500 here
    assert worker.poll() is None
