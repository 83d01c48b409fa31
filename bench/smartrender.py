"""Smart render benchmark: remove-frames and mask re-encoding only the GOPs they change, beside today's full
re-encode of the same request, on a 10-minute 1080p30 H.264/AAC source with 2 s GOPs, in one run.

The source is generated once and kept in the bench cache (`$XDG_CACHE_HOME/mediajobs-bench`, default
~/.cache). Each render runs once (a full one takes minutes); figures are wall and CPU time of the toolkit
call, with the time spent in each kind of subprocess, and the stream-copy HLS remux that makes a smart
result playable (the fast-start path for standard H.264).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from unittest import mock

from bench.media_common import Noise, Run, children_cpu_s, job_threads, ratio_line, run_line
from mediajobs import process
from mediajobs.toolkit.cut import remove_frames
from mediajobs.toolkit.mask import Region, apply_mask
from mediajobs.toolkit.probe import probe
from mediajobs.toolkit.smart.render import smart_cut, smart_mask

SOURCE_S, WIDTH, HEIGHT, FPS = 600, 1920, 1080, 30
CUTS = [(100.0, 101.5), (400.0, 401.5)]
REGION = Region(x=400, y=200, w=640, h=360, start=300.0, end=305.0, style="blur")


def cache_dir() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mediajobs-bench"
    root.mkdir(parents=True, exist_ok=True)
    return root


def source() -> Path:
    """testsrc2 with a 440 Hz tone, x264 veryfast, a keyframe every 2 s; made once, then reused."""
    path = cache_dir() / f"smart-{SOURCE_S}s-{HEIGHT}p{FPS}-gop2s.mp4"
    if path.exists():
        return path
    partial = path.with_name(f"partial-{path.name}")
    print(f"generating the {SOURCE_S} s {WIDTH}x{HEIGHT} source once (minutes) into {path}")
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc2=size={WIDTH}x{HEIGHT}:rate={FPS}:duration={SOURCE_S}",
         "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={SOURCE_S}",
         "-c:v", "libx264", "-preset", "veryfast", "-g", str(2 * FPS), "-keyint_min", str(2 * FPS),
         "-sc_threshold", "0", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k",
         "-movflags", "+faststart", "-f", "mp4", str(partial)],
        check=True,
    )  # fmt: skip
    partial.rename(path)
    return path


def kind(argv: Sequence[str]) -> str:
    """What a subprocess of a render does, for the breakdown."""
    if os.path.basename(argv[0]) == "ffprobe":
        return "ffprobe (index, checks)"
    if any("filter_units" in arg for arg in argv):
        return "ffmpeg NAL pass (keyframe kinds, SPS)"
    if "segment" in argv:
        return "ffmpeg copy pass"
    if "concat" in argv:
        return "ffmpeg join (+ sound)"
    return "ffmpeg re-encode"


def timed(call: Callable[[], Any]) -> tuple[Run, Any, dict[str, float]]:
    """Wall and CPU time of `call`, and wall time per kind of subprocess it started."""
    spent: dict[str, float] = defaultdict(float)
    real_run = process.run

    def run(args: Sequence[str], **kwargs: Any) -> process.Completed:
        started = time.perf_counter()
        try:
            return real_run(args, **kwargs)
        finally:
            spent[kind([str(a) for a in args])] += time.perf_counter() - started

    cpu, started = children_cpu_s(), time.perf_counter()
    with mock.patch.object(process, "run", run):
        result = call()
    return Run(time.perf_counter() - started, children_cpu_s() - cpu), result, dict(spent)


def remux_hls(src: Path, out: Path) -> Run:
    """The stream-copy HLS a standard H.264 result gets from the fast-start path, as a time estimate."""
    out.mkdir()
    cpu, started = children_cpu_s(), time.perf_counter()
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(src), "-c", "copy", "-f", "hls",
         "-hls_time", "6", "-hls_playlist_type", "vod", "-hls_segment_filename", str(out / "s%05d.ts"),
         str(out / "index.m3u8")],
        check=True,
    )  # fmt: skip
    return Run(time.perf_counter() - started, children_cpu_s() - cpu)


def report(label: str, smart: tuple[Run, Any, dict[str, float]], full: Run, aim: str, remux: Run) -> None:
    run, result, spent = smart
    print(f"{label}: {result.public()}")
    print(run_line("smart render (toolkit call)", [run]))
    for name, seconds in sorted(spent.items()):
        print(f"  {'    ' + name:<58} {seconds:6.2f} s")
    print(run_line("today's full re-encode, same request", [full]))
    print(run_line("then stream-copy HLS of the smart result (fast start)", [remux]))
    print(ratio_line(f"ratio {label} smart / full wall time", run.wall_s / full.wall_s, aim))
    print(ratio_line(f"(info) ratio {label} smart / full CPU time", run.cpu_s / full.cpu_s, "-"))
    print(ratio_line(f"(info) {label}: smart + HLS remux (s) until playable", run.wall_s + remux.wall_s, "-"))


def main() -> None:
    threads = job_threads()
    src = source()
    info = probe(src)
    print(
        f"smart render: {SOURCE_S} s {WIDTH}x{HEIGHT} {FPS} fps H.264/AAC, 2 s GOPs; remove-frames "
        f"{', '.join(f'{a:g}-{b:g} s' for a, b in CUTS)}; mask one {REGION.style} region "
        f"{REGION.w}x{REGION.h} from {REGION.start:g} to {REGION.end:g} s; ffmpeg -threads {threads}"
    )
    noise = Noise([])
    with tempfile.TemporaryDirectory(prefix="mj-bench-smart-") as d:
        work = Path(d)
        cut = timed(lambda: smart_cut(src, work / "smart-cut.mp4", info, CUTS, threads=threads))
        cut_remux = remux_hls(work / "smart-cut.mp4", work / "cut-hls")
        full_cut, _, _ = timed(lambda: remove_frames(src, work / "full-cut.mp4", info, CUTS, threads=threads))
        masked = timed(lambda: smart_mask(src, work / "smart-mask.mp4", info, [REGION], threads=threads))
        mask_remux = remux_hls(work / "smart-mask.mp4", work / "mask-hls")
        full_mask, _, _ = timed(
            lambda: apply_mask(src, work / "full-mask.mp4", info, [REGION], threads=threads)
        )
    report("remove-frames", cut, full_cut, "≤ 0.05", cut_remux)
    report("mask", masked, full_mask, "≤ 0.10", mask_remux)
    print(noise.line())


if __name__ == "__main__":
    main()
