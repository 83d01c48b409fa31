"""Issues 10 and 21: time to first play in Chromium at any length, and the ladder across two pinned workers.

1. Time to first play: from the end of the upload (the POST's answer) until Chromium's native player,
   given the master URL as soon as the API shows it, is playing from the start. 1-, 10- and 60-minute
   1080p30 H.264/AAC uploads and a 10-minute HEVC/AAC one, median of 3, beside Mux's published medians
   for standard input of those lengths (2.0 / 5.5 / 46.4 s). Each asset is deleted once it plays,
   so rounds do not queue behind each other's ladders. The stack is laid out as `mediajobs up` runs it.
2. Ladder wall time of a 3-minute 1080p source: two cpu workers each pinned to its own core (`taskset`,
   MEDIAJOBS_FFMPEG_THREADS=1, one slot) vs one such worker; and on that one worker, CPU time chunked
   (MEDIAJOBS_CHUNK_THRESHOLD_S=60) vs unchunked; how far the media.process job's progress and ETA were
   from the time really gone and left, with one worker and with two. The two "hosts" share this machine's
   disk and memory (issue 12's network-namespace harness is where they are apart).

Sources (bench/long_sources.py) are cut or concatenated with `-c copy` from one 10-minute H.264 file and kept
in the bench cache ($XDG_CACHE_HOME/mediajobs-bench). `MJ_BENCH_FAST_START_CASES` picks what to run (default
`1,10,60,hevc,ladder`); `MJ_BENCH_SECONDS` shrinks every source for a check run (20: a 20 s "10-minute"
source, the threshold for chunks scaled with it).
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
from playwright.sync_api import Page, sync_playwright

from bench import long_sources
from bench.media_common import (
    Run,
    StackMeter,
    api_stack,
    cache_dir,
    pinned_worker,
    ratio_line,
    up_workers,
    upload_file,
    wait_media,
)
from mediajobs.testing.browser import CHROMIUM, CHROMIUM_ARGS
from mediajobs.testing.servers import RedisServer, wait_for

ROUNDS = 3
CASES_VARIABLE = "MJ_BENCH_FAST_START_CASES"
ALL_CASES = ("1", "10", "60", "hevc", "ladder")
CHUNK_THRESHOLD_S = 60.0


@dataclass(frozen=True)
class Case:
    """One upload of the time-to-first-play benchmark."""

    name: str
    minutes: int
    codec: str
    mux: str  # Mux's published median for standard input of this length (as issue 21 quotes it), or "-"
    aim_s: float

    def source(self) -> Path:
        return long_sources.hevc_ten_minutes() if self.codec == "hevc" else long_sources.h264(self.minutes)

    def label(self) -> str:
        codec = "HEVC/AAC" if self.codec == "hevc" else "H.264/AAC"
        shown = f"{self.minutes} min"
        if long_sources.scale() != 1:
            shown += f" ({long_sources.length(long_sources.ten_minutes() * self.minutes / 10)})"
        return f"{shown} 1080p30 {codec}"


FIRST_PLAY_CASES = [
    Case("1", 1, "h264", "2.0 s", 2.0),
    Case("10", 10, "h264", "5.5 s", 2.0),
    Case("60", 60, "h264", "46.4 s", 2.0),
    Case("hevc", 10, "hevc", "-", 5.0),
]


def selected() -> list[str]:
    """The cases MJ_BENCH_FAST_START_CASES names (comma-separated), all by default."""
    names = [n.strip() for n in os.environ.get(CASES_VARIABLE, ",".join(ALL_CASES)).split(",") if n.strip()]
    unknown = [n for n in names if n not in ALL_CASES]
    if unknown:
        raise SystemExit(
            f"{CASES_VARIABLE}: unknown case(s) {', '.join(unknown)}; choose among {','.join(ALL_CASES)}"
        )
    return names


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


def time_to_first_play(redis: RedisServer, cases: list[Case]) -> None:
    print("Time to first play: upload answered → Chromium's native player playing the master, median of 3")
    if long_sources.scale() != 1:
        print(
            f"  (sources scaled by MJ_BENCH_SECONDS={long_sources.ten_minutes()}; Mux's figures are for the "
            "full lengths)"
        )
    # Made before the stack runs, never while it measures.
    sources = {case.name: case.source() for case in cases}
    with api_stack(redis) as s, s.client() as client, sync_playwright() as pw:
        up_workers(s)
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.set_content("<video muted playsinline></video>")
        client.timeout = httpx.Timeout(300)
        for case in cases:
            times = [first_play_s(page, client, sources[case.name]) for _ in range(ROUNDS)]
            page.evaluate(
                "() => { const v = document.querySelector('video'); v.removeAttribute('src'); v.load(); }"
            )
            rounds = ", ".join(f"{t:.2f}" for t in times)
            median = statistics.median(times)
            met = "met" if median <= case.aim_s else "not met"
            print(
                f"  {case.label():<32} median {median:6.2f} s  ({rounds})  aim ≤ {case.aim_s:g} s: {met}; "
                f"Mux {case.mux}"
            )
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
        timeline(client, created["job"]["id"])
    start, end = samples[0][0], samples[-1][0]
    total = end - start
    late = [(t, p, eta) for t, p, eta in samples if t - start > total / 10 and p < 100]
    progress_gap = max((abs(p - 100 * (t - start) / total) for t, p, _ in late), default=0.0)
    told = [(abs(eta - (end - t)) / total * 100, t, p, eta) for t, p, eta in late if eta is not None]
    eta_gap = max(told, default=(0.0, start, 0.0, 0.0))
    if told:
        _, t, p, eta = eta_gap
        print(
            f"    (largest ETA error at {t - start:.0f} s of {total:.0f} s: {p:.1f} %, ETA {eta:.0f} s, "
            f"{end - t:.0f} s really left)"
        )
    return run, progress_gap, eta_gap[0]


def timeline(client: httpx.Client, job_id: str) -> None:
    """Where a ladder's wall time went: the parent's own steps and each child, from the parent's start."""
    parent = client.get(f"/api/v1/jobs/{job_id}").json()
    children = client.get("/api/v1/jobs", params={"parent_id": job_id, "limit": 200}).json()["items"]
    stamps = [parent, *sorted(children, key=lambda j: j.get("started_at") or "")]
    zero = datetime.fromisoformat(parent["started_at"])

    def at(job: dict, key: str) -> str:
        if not job.get(key):
            return "     -"
        return f"{(datetime.fromisoformat(job[key]) - zero).total_seconds():6.1f}"

    for job in stamps:
        params = {k: v for k, v in (job.get("params") or {}).items() if not isinstance(v, (dict, list))}
        print(
            f"      {job['kind']:<20} started {at(job, 'started_at')} s  "
            f"finished {at(job, 'finished_at')} s  {str(params)[:90]}"
        )


def ladder_scaling(redis: RedisServer) -> None:
    path = long_sources.h264(3)
    threshold = f"{long_sources.scaled(CHUNK_THRESHOLD_S):g}"
    shown = (
        ""
        if long_sources.scale() == 1
        else f" ({long_sources.length(long_sources.scaled(180))}, chunks past {threshold} s)"
    )
    print(
        f"Ladder of a 3 min{shown} 1080p30 source (top rung copied, three encoded), one ffmpeg thread per job"
    )
    one, one_gap, one_eta = ladder_run(redis, path, [0], chunk_threshold_s=threshold)
    two, two_gap, two_eta = ladder_run(redis, path, [0, 1], chunk_threshold_s=threshold)
    whole, _, _ = ladder_run(redis, path, [0], chunk_threshold_s="1000000")
    for label, run in (
        ("one pinned worker, chunked", one),
        ("two pinned workers, chunked", two),
        ("one pinned worker, not chunked", whole),
    ):
        print(f"  {label:<40} wall {run.wall_s:7.1f} s  CPU {run.cpu_s:7.1f} s")
    print(ratio_line("ratio two workers / one worker, wall", two.wall_s / one.wall_s, "≤ 0.55"))
    print(ratio_line("ratio chunked / unchunked, CPU (one worker)", one.cpu_s / whole.cpu_s, "≤ 1.10"))
    print("  past the first tenth of the run, the media.process job's largest error:")
    print(ratio_line("  progress vs time gone, one worker (points)", one_gap, "±5"))
    print(ratio_line("  progress vs time gone, two workers (points)", two_gap, "±5"))
    print(ratio_line("  ETA vs time really left, one worker (% of the run)", one_eta, "±5 %"))
    print(ratio_line("  ETA vs time really left, two workers (% of the run)", two_eta, "±5 %"))


def main() -> None:
    cases = selected()
    redis = RedisServer(cache_dir() / "fast-start-redis").start()
    try:
        first_play = [c for c in FIRST_PLAY_CASES if c.name in cases]
        if first_play:
            time_to_first_play(redis, first_play)
        if "ladder" in cases:
            ladder_scaling(redis)
    finally:
        redis.stop()


if __name__ == "__main__":
    main()
