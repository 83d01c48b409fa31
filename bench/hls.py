"""HLS benchmark: upload → ready through mediajobs beside the bare ffmpeg ladder, one process and one per rung."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from unittest import mock

from bench.common import redis_server, stack
from bench.media_common import (
    SOURCE_FPS,
    SOURCE_HEIGHT,
    SOURCE_S,
    SOURCE_WIDTH,
    Command,
    Run,
    StackMeter,
    capture,
    job_threads,
    jobs_of,
    make_source,
    ratio_line,
    run_commands,
    run_time_s,
    upload_file,
    wait_media,
)
from mediajobs.media import hls
from mediajobs.media.probe import Probe, probe

WORKER_CONCURRENCY = 2


def single_process(src: Path, out: Path, info: Probe, threads: int) -> Command:
    """The one ffmpeg that `transcode_hls` runs: one decode, split into every rendition."""
    return capture(lambda: hls.transcode_hls(src, out, info, threads=threads))


def per_rendition(src: Path, out: Path, info: Probe, threads: int) -> list[Command]:
    """One ffmpeg per rung, each decoding the source, built by `transcode_hls` itself with a one-rung ladder
    so the encoder, GOP, bitrate and HLS settings stay exactly those of the real command."""
    commands = []
    for rendition in hls.plan_ladder(info):
        with mock.patch.object(hls, "plan_ladder", lambda _probe, r=rendition: [r]):
            commands.append(single_process(src, out / rendition.name, info, threads))
    return commands


def through_mediajobs(src: Path) -> tuple[Run, float]:
    """Upload → ready (upload, probe, HLS ladder, thumbnail, storage); and how long media.process ran."""
    with redis_server() as redis, stack(redis.url, concurrency=WORKER_CONCURRENCY) as s, s.client() as client:
        # CPU is the whole stack's process tree (API, Celery parent, pool children and every ffmpeg/ffprobe
        # they ran), so the job's bookkeeping, upload handling and polling answers count against it; Redis
        # and this client do not.
        meter = StackMeter(s)
        answer = upload_file(client, src)
        media = wait_media(client, answer["media"]["id"])
        run = meter.stop()
        process_s = sum(run_time_s(j) for j in jobs_of(client, media) if j["kind"] == "media.process")
    return run, process_s


def main() -> None:
    threads = job_threads()
    with tempfile.TemporaryDirectory(prefix="mj-bench-hls-") as d:
        work = Path(d)
        src = make_source(work)
        info = probe(src)
        names = ", ".join(r.name for r in hls.plan_ladder(info))
        print(f"HLS ladder: {SOURCE_S} s {SOURCE_WIDTH}x{SOURCE_HEIGHT} {SOURCE_FPS} fps source with audio "
              f"({info.size / 1e6:.1f} MB), renditions {names}, ffmpeg -threads {threads}")
        # Baselines first, with nothing else of ours running; then the stack on the same, now warm, file.
        single = run_commands([single_process(src, work / "single", info, threads)])
        print(single.line("(b) bare ffmpeg, one process for all renditions"))
        split = run_commands(per_rendition(src, work / "split", info, threads))
        print(split.line("(c) bare ffmpeg, one process per rendition, side by side"))
        time.sleep(1)  # let the page cache settle the outputs before the stack starts
        job, process_s = through_mediajobs(src)
        print(job.line("(a) mediajobs POST upload → ready (upload+probe+HLS+thumb)"))
        print(f"  {'    of which the media.process job ran':<58} {process_s:6.2f} s")
        print(ratio_line("ratio job wall / one-process ffmpeg wall", job.wall_s / single.wall_s, "≤ 1.10"))
        print(ratio_line("ratio one-process CPU / per-rendition CPU", single.cpu_s / split.cpu_s, "≤ 0.90"))
        print(ratio_line("(info) ratio job CPU / one-process ffmpeg CPU", job.cpu_s / single.cpu_s, "—"))


if __name__ == "__main__":
    main()
