"""Issue 18: what an asset makes of its ladder, beside bare ffmpeg in the same run.

1. Downloads of a 10-minute 1080p30 standard upload: from the ladder being whole (the job that made the
   asset ready ended) until the MP4 and the M4A are stored (the media.downloads job ended), beside a bare
   `ffmpeg -c copy` remux of the source into the same two files. Aim: ≤ 1.5 times.
2. The storyboard of the same asset: the media.storyboard job's run beside a bare ffmpeg `fps+scale+tile`
   over the source with the same layout. Aim: ≤ 1.2 times.
3. A thumbnail at a time, 20 requests at 20 different times (each the first for its parameters: rendered by
   a job the request waits for), then the same 20 again (served from storage): p50 of each. Aims: ≤ 1 s and
   ≤ 20 ms.

The stack is `mediajobs up` itself (managed Redis, the API, a cpu worker and an io/default worker), in a
throwaway data directory; nothing is imported from the tests. The source is generated once into the bench
cache ($XDG_CACHE_HOME/mediajobs-bench; the fast-start benchmark's 10-minute source is reused when there).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from mediajobs.toolkit import storyboard

# A shorter source for a quick look (`BENCH_OUTPUTS_SECONDS=30`); the figures in the README are for 600 s.
SECONDS = int(os.environ.get("BENCH_OUTPUTS_SECONDS", "600"))
REQUESTS = 20
POLL_S = 0.05


def cache_dir() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mediajobs-bench"
    root.mkdir(parents=True, exist_ok=True)
    return root


def source() -> Path:
    """10 minutes of 1080p30 H.264 (2 s GOPs) with AAC: what a camera or an editor exports ("standard")."""
    shared = cache_dir() / f"fast-start-{SECONDS}s-1080p30-h264.mp4"  # bench.fast_start makes the same
    if shared.exists() and not shared.with_suffix(".part.mp4").exists():
        return shared
    out = cache_dir() / f"outputs-{SECONDS}s-1080p30-h264.mp4"
    if out.exists():
        return out
    partial = out.with_suffix(".part.mp4")
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc2=size=1920x1080:rate=30:duration={SECONDS}",
         "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={SECONDS}",
         "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-g", "60",
         "-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart", str(partial)],
        check=True,
    )  # fmt: skip
    partial.rename(out)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def up() -> Iterator[httpx.Client]:
    """`mediajobs up` in a throwaway data directory; a client of its API; Ctrl-C (SIGINT) stops it."""
    directory = Path(tempfile.mkdtemp(prefix="mj-bench-outputs-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIAJOBS_")}
    env |= {"MEDIAJOBS_DATA_DIR": str(directory / "data"), "MEDIAJOBS_PORT": str(port)}
    log = (directory / "up.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mediajobs", "up"], env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as client:
            deadline = time.monotonic() + 180
            while True:
                try:
                    if client.get("/readyz").status_code == 200 and kinds_served(client):
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"mediajobs up did not start: {(directory / 'up.log').read_text()[-3000:]}"
                    )
                time.sleep(0.2)
            yield client
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        shutil.rmtree(directory, ignore_errors=True)


def kinds_served(client: httpx.Client) -> bool:
    """Whether every queue has a worker yet (doctor's check would say so too): a quick job runs."""
    job = client.post("/api/v1/jobs", json={"kind": "test.add", "params": {"x": 1, "y": 2}}).json()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if client.get(f"/api/v1/jobs/{job['id']}").json()["state"] == "succeeded":
            return True
        time.sleep(0.1)
    return False


def when(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def jobs_of(client: httpx.Client, media_id: str) -> list[dict[str, Any]]:
    return list(client.get("/api/v1/jobs", params={"media_id": media_id, "limit": 500}).json()["items"])


def wait(
    client: httpx.Client, media_id: str, done: Any, what: str, timeout_s: float = 7200
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        media = client.get(f"/api/v1/media/{media_id}").json()
        if media["state"] == "failed":
            raise RuntimeError(f"media failed: {media['error']}")
        if done(media):
            return dict(media)
        time.sleep(1.0)
    raise RuntimeError(f"{what}: not after {timeout_s} s")


def bare(argv: list[str], rounds: int = 3) -> float:
    """The best wall time of `rounds` runs of one ffmpeg command (noise on a shared machine only adds)."""
    walls = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(rounds):
            started = time.perf_counter()
            subprocess.run([a.replace("{tmp}", tmp) for a in argv], check=True)
            walls.append(time.perf_counter() - started)
    return min(walls)


def main() -> None:
    path = source()
    print(f"Outputs of a {SECONDS // 60} min 1080p30 H.264/AAC upload ({path.stat().st_size / 1e6:.0f} MB)")
    ffmpeg = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(path)]
    remux_s = bare(
        [*ffmpeg, "-map", "0:v:0", "-map", "0:a:0", "-c", "copy", "-movflags", "+faststart", "{tmp}/a.mp4",
         "-map", "0:a:0", "-c", "copy", "-movflags", "+faststart", "{tmp}/a.m4a"]
    )  # fmt: skip
    layout = storyboard.plan(float(SECONDS), 1920, 1080)
    chain = f"fps=1/{layout.interval_s:g},scale={layout.tile_width}:{layout.tile_height},"
    chain += f"tile={layout.columns}x{layout.rows}"
    tile_s = bare([*ffmpeg, "-map", "0:v:0", "-vf", chain, "-q:v", "4", "{tmp}/sheet_%03d.jpg"], rounds=2)
    with up() as client:
        started = time.perf_counter()
        with path.open("rb") as body:
            created = client.post(
                "/api/v1/media/uploads", params={"filename": path.name}, content=body,
                headers={"Content-Type": "video/mp4"},
            ).json()  # fmt: skip
        media_id = created["media"]["id"]
        wait(client, media_id, lambda m: m["state"] == "ready", "the ladder")
        ladder_s = time.perf_counter() - started
        wait(
            client, media_id, lambda m: all(d["ready"] for d in m["downloads"]) and m["storyboard"], "outputs"
        )
        jobs = {j["kind"]: j for j in jobs_of(client, media_id)}
        joined = jobs.get("media.finish_ladder") or jobs["media.process"]
        downloads, board = jobs["media.downloads"], jobs["media.storyboard"]
        downloads_s = when(downloads["finished_at"]) - when(joined["finished_at"])
        downloads_run_s = when(downloads["finished_at"]) - when(downloads["started_at"])
        board_s = when(board["finished_at"]) - when(board["started_at"])
        board_wait_s = when(board["started_at"]) - when(board["created_at"])

        thumbnail = f"/api/v1/media/{media_id}/images/thumbnail.jpg"
        firsts, cached = [], []
        for i in range(REQUESTS):
            params = {"time": f"{(13.37 + i * 29.1) * SECONDS / 600:.3f}", "width": 640}
            t0 = time.perf_counter()
            answer = client.get(thumbnail, params=params)
            firsts.append(time.perf_counter() - t0)
            assert answer.status_code == 200, answer.text
        for i in range(REQUESTS):
            params = {"time": f"{(13.37 + i * 29.1) * SECONDS / 600:.3f}", "width": 640}
            t0 = time.perf_counter()
            answer = client.get(thumbnail, params=params)
            cached.append(time.perf_counter() - t0)
            assert answer.status_code == 200, answer.text
    lines = [
        ("ladder whole (upload answered → ready)", f"{ladder_s:.1f} s"),
        ("MP4 + M4A: ladder whole → stored", f"{downloads_s:.2f} s (the job's run {downloads_run_s:.2f} s)"),
        ("bare ffmpeg -c copy remux of the source, best of 3", f"{remux_s:.2f} s"),
        ("ratio (aim ≤ 1.5)", f"{downloads_s / remux_s:.2f}"),
        (
            f"storyboard job ({layout.count} tiles)",
            f"{board_s:.2f} s (waited {board_wait_s:.1f} s for a slot)",
        ),
        ("bare ffmpeg fps+scale+tile of the source, best of 2", f"{tile_s:.2f} s"),
        ("ratio (aim ≤ 1.2)", f"{board_s / tile_s:.2f}"),
        (
            f"thumbnail at a time, first request, p50 of {REQUESTS} (aim ≤ 1 s)",
            f"{statistics.median(firsts) * 1000:.0f} ms",
        ),
        (
            f"thumbnail at a time, cached, p50 of {REQUESTS} (aim ≤ 20 ms)",
            f"{statistics.median(cached) * 1000:.1f} ms",
        ),
    ]
    for label, value in lines:
        print(f"  {label:<62} {value}")


if __name__ == "__main__":
    main()
