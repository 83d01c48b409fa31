"""Egress benchmark: a 200 MB URL import through the egress guard (proxy + jail) beside the same import
without it, both measured as import-job wall time in the same run: one warm-up each, then ROUNDS rounds,
interleaved and alternating which goes first, so drift and neighbours' load fall on both sides alike.

The baseline stack loads bench/egress_kinds.py, whose `media.import` is the built-in one without the guard:
there is no setting that turns the guard off.
"""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import httpx

from bench.common import redis_server
from mediajobs import process
from mediajobs.testing.files import serve_directory
from mediajobs.testing.servers import wait_for
from mediajobs.testing.stacks import Stack, stack_env

SOURCE_BYTES = 200_000_000
ROUNDS = 5
AIM = 1.05


def make_source(path: Path) -> Path:
    """About 200 MB of real H.264: 60 s of 720p test pattern at a fixed high bitrate."""
    rate = f"{SOURCE_BYTES * 8 // 60}"
    process.run([
        "ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
        "-t", "60", "-c:v", "libx264", "-preset", "ultrafast", "-b:v", rate, "-minrate", rate,
        "-maxrate", rate, "-bufsize", rate, "-x264-params", "nal-hrd=cbr", "-y", str(path),
    ])  # fmt: skip
    return path


@contextmanager
def import_stack(broker_url: str, directory: Path, *, guarded: bool) -> Iterator[Stack]:
    directory.mkdir()
    env = stack_env(
        directory,
        broker_url=broker_url,
        timings={},
        import_public_cidrs="127.0.0.1/32",
        import_allowed_ports="*",
        kind_modules="" if guarded else "bench.egress_kinds",
    )
    s = Stack(directory, env).start([("io,cpu,default", 1)])
    try:
        yield s
    finally:
        s.stop()


def import_s(client: httpx.Client, url: str) -> float:
    """Wall time of one import job (started_at to finished_at), pipeline empty: the download alone."""
    created = client.post("/api/v1/media/imports", json={"url": url, "pipeline": []})
    created.raise_for_status()
    job_id = created.json()["job"]["id"]
    job: dict[str, str] = {}

    def done() -> bool:
        job.update(client.get(f"/api/v1/jobs/{job_id}").json())
        return job["state"] in ("succeeded", "failed", "cancelled")

    wait_for(done, timeout_s=600, interval_s=0.1, message="the import to end")
    if job["state"] != "succeeded":
        raise RuntimeError(f"import {job['state']}: {job.get('error')}")
    client.delete(f"/api/v1/media/{created.json()['media']['id']}")
    started, finished = (datetime.fromisoformat(job[k]) for k in ("started_at", "finished_at"))
    return (finished - started).total_seconds()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="mj-bench-egress-") as d:
        work = Path(d)
        (work / "www").mkdir()
        src = make_source(work / "www" / "big.mp4")
        size = src.stat().st_size
        print(
            f"Egress: import of a {size / 1e6:.0f} MB mp4 from a loopback server, best and median of {ROUNDS}"
            " (after a warm-up)"
        )
        times: dict[str, list[float]] = {"guarded": [], "unguarded": []}
        with (
            serve_directory(work / "www") as served,
            redis_server() as redis,
            import_stack(redis.url.replace("/0", "/1"), work / "g", guarded=True) as guarded,
            import_stack(redis.url.replace("/0", "/2"), work / "u", guarded=False) as unguarded,
            guarded.client() as g,
            unguarded.client() as u,
        ):
            url = served.url("big.mp4")
            clients = {"guarded": g, "unguarded": u}
            for client in clients.values():
                import_s(client, url)  # warm-up: page cache, the worker's first imports
            for round_ in range(ROUNDS):
                order = ["unguarded", "guarded"] if round_ % 2 == 0 else ["guarded", "unguarded"]
                for name in order:
                    times[name].append(import_s(clients[name], url))
        for name, values in times.items():
            print(
                f"  {name:<10} best {min(values):6.2f} s  median {statistics.median(values):6.2f} s  "
                f"[{', '.join(f'{v:.2f}' for v in values)}]"
            )
        ratio = min(times["guarded"]) / min(times["unguarded"])
        median_ratio = statistics.median(times["guarded"]) / statistics.median(times["unguarded"])
        # Each round's pair ran back to back, under the same load from whatever else the machine runs.
        paired = statistics.median(g / u for g, u in zip(times["guarded"], times["unguarded"], strict=True))
        verdict = "within" if ratio <= AIM else "over"
        print(
            f"  guarded / unguarded: {ratio:.3f} (best), {median_ratio:.3f} (median), "
            f"{paired:.3f} (median of rounds); aim {AIM} ({verdict})"
        )
