"""Issue 10: time to first play in Chromium, and the ladder across two pinned worker "hosts" vs one.

1. Time to first play: from the end of the upload (the POST's answer) until Chromium's native player,
   given the master URL as soon as the API shows it, is playing from the start. 3- and 10-minute 1080p30
   H.264/AAC uploads and a 3-minute HEVC one, median of 3, beside Mux's published medians. Each asset is
   deleted once it plays, so rounds do not queue behind each other's ladders.
2. Ladder wall time of a 3-minute 1080p source: two cpu workers each pinned to its own core (`taskset`,
   MEDIAJOBS_FFMPEG_THREADS=1, one slot) vs one such worker; and on that one worker, CPU time chunked
   (MEDIAJOBS_CHUNK_THRESHOLD_S=60) vs unchunked. The two "hosts" share this machine's disk and memory
   (issue 12's network-namespace harness is where they are apart).

Sources are generated once and kept in the bench cache ($XDG_CACHE_HOME/mediajobs-bench).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from playwright.sync_api import Page, sync_playwright

from bench.media_common import Run, StackMeter, cache_dir, upload_file, wait_media
from mediajobs.testing.browser import CHROMIUM, CHROMIUM_ARGS
from mediajobs.testing.servers import RedisServer, wait_for
from mediajobs.testing.stacks import Stack, stack_env

ROUNDS = 3
MUX = {180: "2.6 s (1-5 min)", 600: "5.5 s (5-20 min)"}


def source(seconds: int, codec: str) -> Path:
    """A 1080p30 clip with AAC audio and 2 s GOPs, as a camera or an editor exports it."""
    out = cache_dir() / f"fast-start-{seconds}s-1080p30-{codec}.mp4"
    if out.exists():
        return out
    video = ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p"]
    if codec == "hevc":
        video = [
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-x265-params",
            "log-level=error",
            "-tag:v",
            "hvc1",
        ]
    partial = out.with_suffix(".part.mp4")
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc2=size=1920x1080:rate=30:duration={seconds}",
         "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
         *video, "-g", "60", "-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart", str(partial)],
        check=True,
    )  # fmt: skip
    partial.rename(out)
    return out


@contextmanager
def api_stack(redis: RedisServer, **env: str) -> Iterator[Stack]:
    """An API and an io/default worker; cpu workers are added by the caller."""
    directory = Path(os.environ.get("TMPDIR", "/tmp")) / f"mj-bench-fast-{os.getpid()}-{time.monotonic_ns()}"
    directory.mkdir(parents=True)
    s = Stack(directory, stack_env(directory, broker_url=redis.url, timings={}, **env)).start(workers=[])
    try:
        yield s
    finally:
        s.stop()
        subprocess.run(["rm", "-rf", str(directory)], check=False)


def pinned_worker(s: Stack, core: int | None, queues: str = "cpu", concurrency: int = 1) -> None:
    """A worker process, on one core when `core` is given (one ffmpeg thread, one job at a time)."""
    name = f"worker-{len(s.workers)}"
    env = dict(s.env)
    argv = [sys.executable, "-m", "mediajobs", "worker", "--queues", queues]
    argv += ["--concurrency", str(concurrency), "--no-migrate"]
    if core is not None:
        env["MEDIAJOBS_FFMPEG_THREADS"] = "1"
        argv = ["taskset", "-c", str(core), *argv]
    log = open(s.directory / f"{name}.log", "ab")  # noqa: SIM115 - the stack's stop() closes it
    s._logs.append(log)
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    s.workers.append(proc)
    wait_for(lambda: b"ready." in (s.directory / f"{name}.log").read_bytes(), timeout_s=60, message=name)


def first_play_s(page: Page, client: httpx.Client, path: Path) -> float:
    """Seconds from the upload's answer until the native player plays the master from its start."""
    created = upload_file(client, path)
    uploaded = time.perf_counter()
    media_id = created["media"]["id"]
    while True:
        media = client.get(f"/api/v1/media/{media_id}").json()
        if media["state"] == "failed":
            raise RuntimeError(f"media failed: {media['error']}")
        if media["hls"]:
            break
        time.sleep(0.02)
    page.evaluate(
        "url => { const v = document.querySelector('video'); v.src = url; v.play(); }",
        media["hls"]["master_url"],
    )
    page.wait_for_function(
        "() => document.querySelector('video').currentTime > 0", timeout=120_000, polling=20
    )
    played = time.perf_counter() - uploaded
    client.delete(f"/api/v1/media/{media_id}")
    wait_for(lambda: client.get(f"/api/v1/media/{media_id}").status_code == 404, timeout_s=120)
    return played


def time_to_first_play(redis: RedisServer) -> None:
    print("Time to first play: upload answered → Chromium's native player playing the master, median of 3")
    cases = [("3 min 1080p30 H.264/AAC", 180, "h264"), ("10 min 1080p30 H.264/AAC", 600, "h264"),
             ("3 min 1080p30 HEVC/AAC", 180, "hevc")]  # fmt: skip
    with api_stack(redis) as s, s.client() as client, sync_playwright() as pw:
        # What `mediajobs up` runs: a cpu worker with cores/2 slots, an io/default worker with 4.
        pinned_worker(s, None, "cpu", max(1, (os.cpu_count() or 2) // 2))
        pinned_worker(s, None, "io,default", 4)
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.set_content("<video muted playsinline></video>")
        client.timeout = httpx.Timeout(300)
        for label, seconds, codec in cases:
            path = source(seconds, codec)
            times = [first_play_s(page, client, path) for _ in range(ROUNDS)]
            page.evaluate(
                "() => { const v = document.querySelector('video'); v.removeAttribute('src'); v.load(); }"
            )
            aim = "≤ 3 s" if codec == "h264" else "≤ 10 s"
            mux = MUX.get(seconds, "-") if codec == "h264" else "-"
            rounds = ", ".join(f"{t:.2f}" for t in times)
            print(f"  {label:<28} median {statistics.median(times):6.2f} s  ({rounds})  aim {aim}; Mux {mux}")
        browser.close()


def ladder_run(redis: RedisServer, path: Path, cores: list[int], **env: str) -> tuple[Run, float, float]:
    """Upload → ready with one pinned cpu worker per core in `cores`.

    Returns wall and the stack's CPU time, and how faithful the media.process job's progress and ETA were:
    the largest gap between its percent and the share of the wall time gone (points), and between its ETA
    and the time that was really left (share of the whole run), past the first tenth.
    """
    with api_stack(redis, **env) as s, s.client() as client:
        pinned_worker(s, None, "io,default", 2)
        for core in cores:
            pinned_worker(s, core)
        client.timeout = httpx.Timeout(300)
        meter = StackMeter(s)
        created = upload_file(client, path)
        samples: list[tuple[float, float, float | None]] = []
        while True:
            job = client.get(f"/api/v1/jobs/{created['job']['id']}").json()
            samples.append((time.perf_counter(), job["progress"], job.get("eta_seconds")))
            if job["state"] in ("succeeded", "failed", "cancelled"):
                break
            time.sleep(0.5)
        wait_media(client, created["media"]["id"], timeout_s=3600)
        run = meter.stop()
    start, end = samples[0][0], samples[-1][0]
    total = end - start
    late = [(t, p, eta) for t, p, eta in samples if t - start > total / 10 and p < 100]
    progress_gap = max((abs(p - 100 * (t - start) / total) for t, p, _ in late), default=0.0)
    eta_gap = max((abs(eta - (end - t)) / total * 100 for t, _, eta in late if eta is not None), default=0.0)
    return run, progress_gap, eta_gap


def ladder_scaling(redis: RedisServer) -> None:
    path = source(180, "h264")
    print("Ladder of a 3 min 1080p30 source (top rung copied, three encoded), one ffmpeg thread per job")
    one, one_gap, one_eta = ladder_run(redis, path, [0])
    two, two_gap, two_eta = ladder_run(redis, path, [0, 1])
    whole, _, _ = ladder_run(redis, path, [0], chunk_threshold_s="1000000")
    for label, run in (
        ("one pinned worker, chunked", one),
        ("two pinned workers, chunked", two),
        ("one pinned worker, not chunked", whole),
    ):
        print(f"  {label:<40} wall {run.wall_s:7.1f} s  CPU {run.cpu_s:7.1f} s")
    print(f"  ratio two workers / one worker wall {two.wall_s / one.wall_s:6.2f}   (aim ≤ 0.60)")
    print(f"  ratio chunked / unchunked CPU       {one.cpu_s / whole.cpu_s:6.2f}   (aim ≤ 1.10)")
    print(
        f"  progress vs time gone, largest gap: {one_gap:.1f} points (one worker), {two_gap:.1f} (two); "
        f"ETA vs time left: {one_eta:.1f} % of the run, {two_eta:.1f} % (aim ±5)"
    )


def main() -> None:
    redis = RedisServer(cache_dir() / "fast-start-redis").start()
    try:
        time_to_first_play(redis)
        ladder_scaling(redis)
    finally:
        redis.stop()


if __name__ == "__main__":
    main()
