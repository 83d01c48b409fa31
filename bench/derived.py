"""Issue 21: edit in place. A mask and a frame removal of a 10-minute 1080p30 H.264/AAC upload, each until the
derived asset is ready with its whole ladder, beside a full ladder of the source.

Through a real stack laid out as `mediajobs up` runs it (an API, a cpu worker with a slot per two cores and
an io/default worker), on the fast-start benchmark's 10-minute source (bench/long_sources.py, 2 s GOPs). Every
asset's pipeline is `hls,thumbnail`: the ladder, not the downloads or storyboard made from it afterwards.

1. The baseline, "a full ladder encode of the source": from the upload's answer until the source asset is
   ready with its whole ladder. Its top rung is the source's own stream, copied by fast start; the lower rungs
   are encoded (in chunks, on the cpu worker); the thumbnail is made. Beside it, unless
   MJ_BENCH_DERIVED_BARE=0, one bare ffmpeg encoding those lower rungs with mediajobs' own arguments
   (`toolkit.hls.renditions.encode`, the audio decoded as the job checks it), on the idle machine after the
   stack stopped: what the encode costs without the service around it.
2. A mask of 5 s (one blur region, 100.0-105.0 s) and a removal of two 1.5 s ranges (100.0-101.5 and
   400.0-401.5 s), each from its POST until the derived asset is `ready` with its whole ladder (as many rungs
   as the source's, each ready and listed in the master, each playlist ended); median of 3, each derived asset
   deleted before the next round. Each derived asset's media.process result must say that its ladder was
   built from the parent's (`from_parent.built`); how many segments it copied and encoded is printed.
   Aim: each at most 0.1 of the baseline.

`MJ_BENCH_SECONDS` shrinks the source for a check run (the edits' start times scale with it, their lengths do
not). Imports nothing from tests/.
"""

from __future__ import annotations

import os
import re
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench import long_sources
from bench.common import redis_server
from bench.media_common import (
    Noise,
    Run,
    StackMeter,
    api_stack,
    capture,
    job_threads,
    ratio_line,
    redis_pids,
    run_commands,
    run_line,
    run_time_s,
    stack_pids,
    up_workers,
    upload_file,
    wait_job,
    wait_media,
)
from mediajobs.testing.servers import wait_for
from mediajobs.toolkit import packets
from mediajobs.toolkit.hls import ladder, renditions
from mediajobs.toolkit.probe import probe

ROUNDS = 3
PIPELINE = ["hls", "thumbnail"]
REGION = {"x": 400, "y": 200, "w": 640, "h": 360, "style": "blur"}
MASK = (100.0, 105.0)
CUTS = [(100.0, 101.5), (400.0, 401.5)]
LADDER_TIMEOUT_S = 7200
DERIVED_TIMEOUT_S = 1800


def at(full: tuple[float, float]) -> tuple[float, float]:
    """A span of the full-size benchmark in this run's source: its start scaled, its length kept."""
    start = round(long_sources.scaled(full[0]), 3)
    return start, round(start + full[1] - full[0], 3)


@dataclass(frozen=True)
class Derived:
    """One operation until its derived asset is ready with its whole ladder."""

    seconds: float  # from the POST until the derived asset is ready
    operation_job_s: float  # the operation's own job (smart render, storing the derived original)
    process_job_s: float  # the derived asset's media.process (its ladder from the parent's)
    from_parent: dict[str, Any]
    render: dict[str, Any]


def whole_ladder(client: httpx.Client, media: dict[str, Any], rungs: int) -> None:
    """Raise unless the asset's ladder has `rungs` video rungs, each ready, listed in the master and ended."""
    hls = media.get("hls") or {}
    variants = hls.get("variants", [])
    problems = []
    if len(variants) != rungs:
        problems.append(f"{len(variants)} rungs, not {rungs}")
    if not all(v.get("ready") for v in variants):
        problems.append("a rung is not ready")
    master = client.get(hls["master_url"]).text if hls else ""
    listed = len(re.findall(r"^#EXT-X-STREAM-INF", master, flags=re.MULTILINE))
    if listed != len(variants):
        problems.append(f"the master lists {listed} rungs of {len(variants)}")
    for v in variants:
        playlist = client.get(v["url"]).text
        if "#EXT-X-ENDLIST" not in playlist:
            problems.append(f"the {v.get('height')}p playlist has no end")
    if problems:
        raise RuntimeError(f"media {media['id']}: its ladder is not whole: {'; '.join(problems)}")


def derive(client: httpx.Client, source: dict[str, Any], operation: str, body: dict[str, Any]) -> Derived:
    """POST the operation; wait until its derived asset is ready with its whole ladder; then delete it."""
    rungs = len(source["hls"]["variants"])
    started = time.perf_counter()
    r = client.post(f"/api/v1/media/{source['id']}/{operation}", json={**body, "pipeline": PIPELINE})
    if r.status_code != 202:
        raise RuntimeError(f"POST {operation} answered {r.status_code}: {r.text}")
    answer = r.json()
    media = wait_media(client, answer["media"]["id"], timeout_s=DERIVED_TIMEOUT_S)
    seconds = time.perf_counter() - started
    whole_ladder(client, media, rungs)
    job = wait_job(client, answer["job"]["id"])
    process = wait_job(client, job["result"]["process_job"])
    client.delete(f"/api/v1/media/{media['id']}")
    wait_for(lambda: client.get(f"/api/v1/media/{media['id']}").status_code == 404, timeout_s=300)
    render = {
        k: job["result"].get(k) for k in ("render", "reencoded_s", "copied_s", "reason") if k in job["result"]
    }
    note = (process.get("result") or {}).get("from_parent") or {"built": "?", "reason": "no from_parent note"}
    return Derived(seconds, run_time_s(job), run_time_s(process), note, render)


def bare_lower_rungs(src: Path) -> Run:
    """One ffmpeg encoding the rungs below the copied top, exactly as a media.process job would (one decode
    split into every rung, mediajobs' encoder settings and grid), unchunked."""
    info = probe(src)
    index = packets.scan(src, duration_s=info.duration, max_pixels=info.max_pixels)
    lad = ladder.plan(info, index)
    with tempfile.TemporaryDirectory(prefix="mj-bench-derived-") as d:
        command = capture(lambda: renditions.encode(src, Path(d), lad, info, threads=job_threads()))
        return run_commands([command])


def report(name: str, rounds: list[Derived], baseline_s: float) -> None:
    times = [r.seconds for r in rounds]
    median = statistics.median(times)
    each = ", ".join(f"{t:.1f}" for t in times)
    print(f"  {name + ': POST → derived ready':<58} median {median:7.1f} s   ({each})")
    print(f"  {'    of which the operation job (smart render, store)':<58} median "
          f"{statistics.median(r.operation_job_s for r in rounds):7.1f} s")  # fmt: skip
    print(f"  {'    of which the derived media.process (its ladder)':<58} median "
          f"{statistics.median(r.process_job_s for r in rounds):7.1f} s")  # fmt: skip
    notes = {str(sorted(r.from_parent.items())) for r in rounds}
    last = rounds[-1]
    print(
        f"    render: {last.render}; ladder: {last.from_parent}"
        + (" (differs between rounds)" if len(notes) > 1 else "")
    )
    in_place = all(r.from_parent.get("built") == "from_parent" for r in rounds)
    if not in_place:
        print("    NOT edited in place in every round: the figure below is not issue 21's")
    print(ratio_line(f"ratio {name} / full ladder", median / baseline_s, "≤ 0.10"))


def main() -> None:
    src = long_sources.h264(10)
    seconds = long_sources.ten_minutes()
    mask, cuts = at(MASK), [at(c) for c in CUTS]
    size_mb = src.stat().st_size / 1e6
    print(
        f"Edit in place: a {long_sources.length(seconds)} 1080p30 H.264/AAC source ({size_mb:.0f} MB, "
        f"2 s GOPs), `mediajobs up`'s workers, pipeline {','.join(PIPELINE)}; "
        f"mask {mask[0]:g}-{mask[1]:g} s, remove {', '.join(f'{a:g}-{b:g} s' for a, b in cuts)}; "
        f"median of {ROUNDS}"
    )
    with redis_server() as redis, api_stack(redis) as s, s.client() as client:
        up_workers(s)
        client.timeout = httpx.Timeout(300)
        noise = Noise([*stack_pids(s), *redis_pids(redis)])
        meter = StackMeter(s)
        created = upload_file(client, src, pipeline=",".join(PIPELINE))
        uploaded = time.perf_counter()
        source = wait_media(client, created["media"]["id"], timeout_s=LADDER_TIMEOUT_S)
        baseline_s = time.perf_counter() - uploaded
        baseline = meter.stop()
        rungs = [f"{v['height']}p" for v in source["hls"]["variants"]]
        whole_ladder(client, source, len(rungs))
        region = {**REGION, "start": mask[0], "end": mask[1]}
        masked = [derive(client, source, "mask", {"regions": [region]}) for _ in range(ROUNDS)]
        ranges = [{"start": a, "end": b} for a, b in cuts]
        removed = [derive(client, source, "remove-frames", {"ranges": ranges}) for _ in range(ROUNDS)]
        contention = noise.line()
    bare = bare_lower_rungs(src) if os.environ.get("MJ_BENCH_DERIVED_BARE", "1") != "0" else None

    print(f"  baseline: the source's full ladder, rungs {', '.join(rungs)}; the top copied by fast start, "
          "the lower ones encoded, and the thumbnail")  # fmt: skip
    print(f"  {'upload answered → source ready (whole ladder)':<58} wall {baseline_s:7.1f} s   "
          f"(stack CPU {baseline.cpu_s:.1f} s from the upload's start)")  # fmt: skip
    if bare is not None:
        print(run_line("bare ffmpeg: the lower rungs in one process (idle machine)", [bare]))
    else:
        print("  bare ffmpeg of the lower rungs: skipped (MJ_BENCH_DERIVED_BARE=0)")
    print("  each derived asset, until it is ready with its whole ladder:")
    report(f"mask {mask[1] - mask[0]:g} s", masked, baseline_s)
    report(f"remove {len(cuts)} ranges of {cuts[0][1] - cuts[0][0]:g} s", removed, baseline_s)
    print(contention)


if __name__ == "__main__":
    main()
