"""HLS benchmark: upload → ready beside the bare ffmpeg ladder, in one process or one per rung."""

from __future__ import annotations

import tempfile
from pathlib import Path

import httpx

from bench.common import redis_server, stack
from bench.media_common import (
    SOURCE_FPS,
    SOURCE_HEIGHT,
    SOURCE_S,
    SOURCE_WIDTH,
    Command,
    Noise,
    Run,
    StackMeter,
    best,
    capture,
    job_threads,
    jobs_of,
    make_source,
    ratio_line,
    redis_pids,
    run_commands,
    run_line,
    run_time_s,
    stack_pids,
    upload_file,
    wait_job,
    wait_media,
)
from mediajobs.testing.stacks import Stack
from mediajobs.toolkit import packets
from mediajobs.toolkit.hls import ladder, renditions
from mediajobs.toolkit.probe import Probe, probe

WORKER_CONCURRENCY = 2
ROUNDS = 3


def _all_encoded(src: Path, info: Probe) -> ladder.Ladder:
    """The ladder with every rung encoded, the source's own stream included: yesterday's job, the baseline."""
    index = packets.scan(src, duration_s=info.duration, max_pixels=info.max_pixels)
    return ladder.plan_encoded(info, index, "the baseline encodes every rung")


def single_process(src: Path, out: Path, info: Probe, threads: int) -> Command:
    """One ffmpeg for the whole ladder: one decode split into every rendition, the audio encoded once."""
    lad = _all_encoded(src, info)
    return capture(lambda: renditions.encode(src, out, lad, info, with_audio=True, threads=threads))


def per_rendition(src: Path, out: Path, info: Probe, threads: int) -> list[Command]:
    """One ffmpeg per rung, each decoding the source, built by `renditions.encode` itself with one rung so the
    encoder, GOP, bitrate and segment settings stay exactly those of the real command."""
    lad = _all_encoded(src, info)
    return [
        capture(lambda r=r: renditions.encode(src, out / r.name, lad, info, renditions=[r], threads=threads))
        for r in lad.renditions
    ]


def through_mediajobs(s: Stack, client: httpx.Client, src: Path) -> tuple[Run, float]:
    """Upload → ready (upload, probe, HLS ladder, thumbnail, storage); and how long media.process ran.

    CPU is the stack's whole process tree (API, Celery parent, pool children and every ffmpeg/ffprobe they
    ran), so the job engine, the upload handling and the answers to this client's polls count against
    mediajobs; Redis and this client do not.
    """
    meter = StackMeter(s)
    answer = upload_file(client, src)
    media = wait_media(client, answer["media"]["id"])
    run = meter.stop()
    # The asset turns ready a moment before its job row is finished, so wait for the job's own end.
    jobs = [wait_job(client, j["id"]) for j in jobs_of(client, media) if j["kind"] == "media.process"]
    return run, sum(run_time_s(j) for j in jobs)


def main() -> None:
    threads = job_threads()
    with tempfile.TemporaryDirectory(prefix="mj-bench-hls-") as d:
        work = Path(d)
        src = make_source(work)
        info = probe(src)
        names = ", ".join(r.name for r in ladder.plan_ladder(info))
        print(
            f"HLS ladder: {SOURCE_S} s {SOURCE_WIDTH}x{SOURCE_HEIGHT} {SOURCE_FPS} fps source with audio "
            f"({info.size / 1e6:.1f} MB), renditions {names}, ffmpeg -threads {threads}, best of {ROUNDS}"
        )
        single_cmd = single_process(src, work / "single", info, threads)
        split_cmds = per_rendition(src, work / "split", info, threads)
        single, split, job, process_s = [], [], [], []
        with (
            redis_server() as redis,
            stack(redis.url, concurrency=WORKER_CONCURRENCY) as s,
            s.client() as client,
        ):
            noise = Noise([*stack_pids(s), *redis_pids(redis)])
            # Interleaved rounds, the idle stack up throughout: a load spike on this shared machine then
            # hits one round of every variant rather than all rounds of one.
            for _ in range(ROUNDS):
                single.append(run_commands([single_cmd]))
                split.append(run_commands(split_cmds))
                run, process_run_s = through_mediajobs(s, client, src)
                job.append(run)
                process_s.append(process_run_s)
            contention = noise.line()
        report(single, split, job, min(process_s))
        print(contention)


def report(singles: list[Run], splits: list[Run], jobs: list[Run], process_s: float) -> None:
    print(run_line("(b) bare ffmpeg, one process encoding all renditions", singles))
    print(run_line("(c) bare ffmpeg, one process per rendition, side by side", splits))
    print(run_line("(a) mediajobs POST upload → ready (fast start: top rung copied)", jobs))
    print(f"  {'    of which the media.process job ran (best)':<58} {process_s:6.2f} s")
    single, split, job = best(singles), best(splits), best(jobs)
    print(ratio_line("ratio job wall / one-process ffmpeg wall", job.wall_s / single.wall_s, "≤ 1.10"))
    print(ratio_line("ratio one-process CPU / per-rendition CPU", single.cpu_s / split.cpu_s, "≤ 0.90"))
    print(ratio_line("(info) ratio job CPU / one-process ffmpeg CPU", job.cpu_s / single.cpu_s, "-"))


if __name__ == "__main__":
    main()
