"""Mask and remove-frames benchmarks: the mediajobs jobs beside bare ffmpeg and an OpenCV frame loop."""

from __future__ import annotations

import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

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
    children_cpu_s,
    job_threads,
    make_source,
    option,
    ratio_line,
    redis_pids,
    run_commands,
    run_line,
    run_time_s,
    self_cpu_s,
    stack_pids,
    upload_file,
    wait_job,
    wait_media,
)
from mediajobs.testing.stacks import Stack
from mediajobs.toolkit.cut import remove_frames
from mediajobs.toolkit.mask import Region, apply_mask
from mediajobs.toolkit.probe import Probe, probe

WORKER_CONCURRENCY = 2
ROUNDS = 2
REGION = Region(x=400, y=200, w=640, h=360, start=5.0, end=15.0, style="blur")
CUT = (5.0, 10.0)


@dataclass(frozen=True)
class JobRun:
    """An operation through the API: POST → job succeeded, the job's own run time, and the derived asset's
    HLS pipeline afterwards (reported apart: it is the ladder benchmark again, not the operation)."""

    run: Run
    job_s: float
    derived_ready_s: float


def through_api(client: httpx.Client, meter: StackMeter, path: str, body: dict[str, Any]) -> JobRun:
    r = client.post(path, json=body)
    if r.status_code != 202:
        raise RuntimeError(f"POST {path} answered {r.status_code}: {r.text}")
    job = wait_job(client, r.json()["job"]["id"])
    run = meter.stop()
    finished = time.perf_counter()
    # The next measurement must not share the CPU with this asset's ladder, so wait for it either way.
    wait_media(client, job["result"]["media_id"])
    return JobRun(run, run_time_s(job), time.perf_counter() - finished)


def mask_command(src: Path, out: Path, info: Probe, threads: int) -> Command:
    """Exactly what `apply_mask` runs in the job: its filter graph, encoder, audio copy and faststart."""
    return capture(lambda: apply_mask(src, out / "masked.mp4", info, [REGION], threads=threads))


def cut_command(src: Path, out: Path, info: Probe, threads: int) -> Command:
    """Exactly what `remove_frames` runs in the job (trim/atrim + concat)."""
    return capture(lambda: remove_frames(src, out / "cut.mp4", info, [CUT], threads=threads))


def select_command(src: Path, out: Path, mask: Command, threads: int) -> Command:
    """The textbook cut: one select/aselect re-encode, same x264 settings and audio codec as the job."""
    start, end = CUT
    keep = f"not(between(t,{start},{end}))"
    return Command([
        "ffmpeg", "-hide_banner", "-nostdin", "-y", "-threads", str(threads), "-i", str(src),
        "-vf", f"select='{keep}',setpts=N/FRAME_RATE/TB",
        "-af", f"aselect='{keep}',asetpts=N/SR/TB",
        "-c:v", "libx264", "-preset", option(mask.argv, "-preset"), "-crf", option(mask.argv, "-crf"),
        "-pix_fmt", "yuv420p", "-threads", str(threads), "-c:a", "aac", "-b:a", "192k",
        "-movflags", "+faststart", str(out / "select.mp4"),
    ])  # fmt: skip


def opencv_mask(src: Path, dst: Path, info: Probe, mask: Command, threads: int) -> Run:
    """The straightforward alternative: decode with OpenCV, blur in Python, pipe raw frames to x264.

    Three box passes with the radius `apply_mask` uses (a quarter of the smaller side), so both blur alike;
    the encoder takes the same preset, crf and thread count, and the audio is copied from the source.
    """
    import cv2

    width, height, fps = info.width or 0, info.height or 0, info.fps or SOURCE_FPS
    x, y, w, h = REGION.x, REGION.y, REGION.w, REGION.h
    kernel = 2 * max(1, min(w, h) // 4) + 1
    end = REGION.end if REGION.end is not None else float("inf")
    encode = [
        "ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{width}x{height}", "-framerate", f"{fps:g}",
        "-i", "pipe:0", "-i", str(src), "-map", "0:v", "-map", "1:a:0",
        "-c:v", "libx264", "-preset", option(mask.argv, "-preset"), "-crf", option(mask.argv, "-crf"),
        "-pix_fmt", "yuv420p", "-threads", str(threads), "-c:a", "copy", "-movflags", "+faststart", str(dst),
    ]  # fmt: skip
    # In-process work (OpenCV decode and blur) is this process' own CPU; the encoder's is a waited child's.
    cpu_before, started = self_cpu_s() + children_cpu_s(), time.perf_counter()
    video = cv2.VideoCapture(str(src))
    encoder = subprocess.Popen(encode, stdin=subprocess.PIPE)
    assert encoder.stdin is not None
    index = 0
    while True:
        ok, frame = video.read()
        if not ok:
            break
        if REGION.start <= index / fps <= end:
            roi = frame[y : y + h, x : x + w]
            for _ in range(3):
                roi = cv2.blur(roi, (kernel, kernel))
            frame[y : y + h, x : x + w] = roi
        encoder.stdin.write(frame.data)
        index += 1
    video.release()
    encoder.stdin.close()
    if encoder.wait() != 0:
        raise RuntimeError("the OpenCV loop's encoder failed")
    return Run(time.perf_counter() - started, self_cpu_s() + children_cpu_s() - cpu_before)


@dataclass
class Figures:
    """Every round's runs of every variant."""

    bare: list[Run] = field(default_factory=list)
    loop: list[Run] = field(default_factory=list)
    mask_job: list[JobRun] = field(default_factory=list)
    select: list[Run] = field(default_factory=list)
    trim: list[Run] = field(default_factory=list)
    cut_job: list[JobRun] = field(default_factory=list)


def best_job(jobs: list[JobRun]) -> JobRun:
    return JobRun(
        best([j.run for j in jobs]), min(j.job_s for j in jobs), min(j.derived_ready_s for j in jobs)
    )


def measure(s: Stack, client: httpx.Client, src: Path, info: Probe, work: Path, threads: int) -> Figures:
    """Interleaved rounds of every variant, the stack up throughout, so a load spike on this shared machine
    hits one round of each rather than every round of one. The source asset is made ready first, untimed."""
    mask, trim = mask_command(src, work, info, threads), cut_command(src, work, info, threads)
    select = select_command(src, work, mask, threads)
    base = f"/api/v1/media/{upload_file(client, src)['media']['id']}"
    wait_media(client, base.rsplit("/", 1)[-1])
    figures = Figures()
    for _ in range(ROUNDS):
        figures.bare.append(run_commands([mask]))
        figures.loop.append(opencv_mask(src, work / "opencv.mp4", info, mask, threads))
        # Job CPU covers the stack's whole process tree (API, Celery parent, pool children, their ffmpeg);
        # the span ends when the job is seen succeeded, before the derived asset's ladder starts.
        figures.mask_job.append(
            through_api(client, StackMeter(s), f"{base}/mask", {"regions": [asdict(REGION)]})
        )
        figures.select.append(run_commands([select]))
        figures.trim.append(run_commands([trim]))
        ranges = [{"start": CUT[0], "end": CUT[1]}]
        figures.cut_job.append(
            through_api(client, StackMeter(s), f"{base}/remove-frames", {"ranges": ranges})
        )
    return figures


def job_lines(label: str, jobs: list[JobRun]) -> list[str]:
    job = best_job(jobs)
    return [
        run_line(f"{label}: POST → job succeeded", [j.run for j in jobs]),
        f"  {'    the job itself (started_at → finished_at)':<58} {job.job_s:6.2f} s",
        f"  {'    then the derived asset HLS+thumbnail (excluded)':<58} {job.derived_ready_s:6.2f} s",
    ]


def print_mask(f: Figures) -> None:
    print(run_line("(b) bare ffmpeg, apply_mask's command", f.bare))
    print(run_line("(c) OpenCV decode + cv2.blur + raw pipe to ffmpeg x264", f.loop))
    for line in job_lines("(a) mediajobs mask", f.mask_job):
        print(line)
    bare, loop, job = best(f.bare), best(f.loop), best_job(f.mask_job)
    print(
        ratio_line("ratio mask job (POST → succeeded) / bare ffmpeg", job.run.wall_s / bare.wall_s, "≤ 1.10")
    )
    print(
        ratio_line("ratio mask job (POST → succeeded) / OpenCV loop", job.run.wall_s / loop.wall_s, "≤ 0.75")
    )
    print(ratio_line("(info) ratio mask job run time / bare ffmpeg", job.job_s / bare.wall_s, "-"))
    print(ratio_line("(info) ratio mask job CPU / bare ffmpeg CPU", job.run.cpu_s / bare.cpu_s, "-"))


def print_cut(f: Figures) -> None:
    print(f"remove-frames: {CUT[0]:g} to {CUT[1]:g} s cut out of the same source")
    print(run_line("(e) bare ffmpeg, select/aselect full re-encode", f.select))
    print(run_line("(f) bare ffmpeg, remove_frames' trim/concat command", f.trim))
    for line in job_lines("(d) mediajobs remove-frames", f.cut_job):
        print(line)
    select, trim, job = best(f.select), best(f.trim), best_job(f.cut_job)
    print(
        ratio_line("ratio remove-frames job (POST → succeeded) / select", job.run.wall_s / select.wall_s, "-")
    )
    print(ratio_line("(info) ratio job run time / its own trim/concat command", job.job_s / trim.wall_s, "-"))


def main() -> None:
    threads = job_threads()
    with tempfile.TemporaryDirectory(prefix="mj-bench-mask-") as d:
        work = Path(d)
        src = make_source(work)
        info = probe(src)
        r = REGION
        print(
            f"mask: {SOURCE_S} s {SOURCE_WIDTH}x{SOURCE_HEIGHT} {SOURCE_FPS} fps source with audio, "
            f"one {r.style} region {r.w}x{r.h}+{r.x}+{r.y} from {r.start:g} to {r.end:g} s, "
            f"apply_mask's x264 settings, ffmpeg -threads {threads}, best of {ROUNDS}"
        )
        with (
            redis_server() as redis,
            stack(redis.url, concurrency=WORKER_CONCURRENCY) as s,
            s.client() as client,
        ):
            noise = Noise([*stack_pids(s), *redis_pids(redis)])
            figures = measure(s, client, src, info, work, threads)
            contention = noise.line()
        print_mask(figures)
        print_cut(figures)
        print(contention)


if __name__ == "__main__":
    main()
