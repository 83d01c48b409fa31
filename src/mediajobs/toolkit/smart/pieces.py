"""The ffmpeg commands of a smart render: copy a span's packets, re-encode a span to match, join the pieces.

Pieces are MPEG-TS files: Annex B video with its parameter sets in band, so a decoder meeting a piece's first
keyframe has the SPS/PPS (VPS) it needs whatever came before. A copied span gets them with
`<codec>_mp4toannexb,dump_extra`; the encoders repeat theirs at every keyframe. The join reads the pieces with
the concat demuxer and rewrites the timestamps onto the source's frame grid: presentation times rounded to
their frame slot, decode times one frame apart, `reorder` frames behind, as one continuous stream.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mediajobs import process
from mediajobs.toolkit.ffmpeg import sei_filter
from mediajobs.toolkit.inputs import INPUT_PROTOCOLS, input_args, probe_limits, read_limit_s, watch_pixels
from mediajobs.toolkit.packets import VideoIndex, VideoStream
from mediajobs.toolkit.probe import FFPROBE
from mediajobs.toolkit.smart.gops import InexactSource
from mediajobs.toolkit.smart.plan import Span

PIECE_TICKS_PER_S = 90_000  # MPEG-TS timestamps: what the joined stream's packets are counted in
X264_PROFILES = {
    "Constrained Baseline": "baseline",
    "Baseline": "baseline",
    "Main": "main",
    "High": "high",
    "High 10": "high10",
    "High 4:2:2": "high422",
    "High 4:4:4 Predictive": "high444",
}
X265_PROFILES = {"Main": "main", "Main 10": "main10"}
# What the profiles above hold and libx264/libx265 take.
X264_FORMATS = frozenset({"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "yuv420p10le",
                          "yuv422p10le", "yuv444p10le"})  # fmt: skip
X265_FORMATS = frozenset({"yuv420p", "yuvj420p", "yuv420p10le"})
# Colour description values ffmpeg's options take under the names ffprobe prints.
_COLOUR_OPTIONS = {
    "color_range": "-color_range",
    "color_space": "-colorspace",
    "color_transfer": "-color_trc",
    "color_primaries": "-color_primaries",
    "chroma_location": "-chroma_sample_location",
}
_UNSET = {"unknown", "unspecified", "reserved", ""}
_NAME = re.compile(r"[a-z0-9-]+")
_INT = re.compile(r"-?\d+")
# Decoding past a piece's last frame by this much leaves room for the frames reordering still holds back.
READ_MARGIN_S = 1.0


@dataclass(frozen=True)
class Piece:
    """One file of the join, showing `frames` frames."""

    path: Path
    frames: int


def seek_frame(index: VideoIndex, first: int) -> int:
    """The display frame of the latest keyframe from which decoding reaches frame `first` intact."""
    # A leading frame of GOP g needs GOP g-1, so the keyframe must show at or before `first` itself.
    keys = [g.key for g in index.gops if g.key <= first]
    return keys[-1] if keys else 0


def _window(index: VideoIndex, start: int, end: int) -> list[str]:
    """Input options reading from the keyframe at display frame `start` (or one before) past frame `end`."""
    seek_s = max(0.0, index.time_s(start))
    options = ["-copyts", "-ss", f"{seek_s:.6f}"]
    if end < index.count:
        # The read limit counts from where the seek lands, which may be the keyframe before `start`
        # (ffmpeg seeks a little early for B-frame streams); frames held back by reordering come late.
        slack = 2 * index.longest_gop_s + READ_MARGIN_S + (index.reorder + 2) / float(index.fps)
        options += ["-t", f"{index.time_s(end) - seek_s + slack:.6f}"]
    else:
        options += ["-t", f"{read_limit_s(index.time_s(index.count)):.3f}"]
    return options


def copy_args(
    src: Path, index: VideoIndex, spans: Sequence[Span], pattern: Path, *, max_pixels: int | None
) -> list[str]:
    """One pass copying the packets of every copy span, as they are, to one piece per span.

    Packets are picked by their decode index: ffmpeg 5.1 hands bitstream filters a stream copy's timestamps
    in the muxer's time base while reporting the input's, so `pts` in an expression cannot be trusted.
    """
    keep, leading, starts, count = [], [], [], 0
    for span in spans:
        # A copy span runs from a keyframe to a GOP boundary: decode indices [keyframe, end).
        gop = index.gops[index.gop_of(span.first)]
        keep.append(f"between(n,{gop.first},{span.end - 1})")
        # The keyframe's leading frames lean on the GOP before, which is not copied with them.
        leading += [f"eq(n,{n})" for n in range(gop.first, span.end) if index.display[n] < span.first]
        starts.append(count)
        count += span.frames
    drop = "+".join([f"not({'+'.join(keep)})", *leading])
    # Copied GOPs keep their pictures, not the source's SEI (its encoder's settings, a camera's time, place).
    no_sei = sei_filter(index.stream.codec)
    end = spans[-1].end
    read_s = index.time_s(end) + READ_MARGIN_S if end < index.count else read_limit_s(index.time_s(end))
    return [
        "-copyts", "-t", f"{read_s:.6f}", *input_args(src, max_pixels=max_pixels),
        "-map", "0:V:0", "-c:v", "copy",
        "-bsf:v", f"noise=drop='{drop}',{index.stream.codec}_mp4toannexb,dump_extra,{no_sei}",
        "-f", "segment", "-segment_format", "mpegts", "-reset_timestamps", "0",
        # Split exactly where each span starts; one span still needs a split point, never reached, or
        # the segment muxer cuts every 2 s.
        "-segment_frames", ",".join(map(str, starts[1:] or [count + 1])),
        str(pattern),
    ]  # fmt: skip


def encode_args(
    src: Path,
    index: VideoIndex,
    first: int,
    end: int,
    piece: Path,
    *,
    graph: str,
    crf: int,
    preset: str,
    max_pixels: int | None,
    before: Sequence[str] = (),
    after: Sequence[str] = (),
) -> list[str]:
    """Re-encode display frames [first, end) through `graph` (`[span]` in, `[v]` out) to match the source."""
    s, pts = index.stream, index.shown_pts
    trim = f"start_pts={pts[first]}" + (f":end_pts={pts[end]}" if end < index.count else "")
    chain = f"[0:V:0]trim={trim},setpts=PTS-{round(index.start_s / s.time_base)}[span];{graph}"
    return [
        *before, *_window(index, seek_frame(index, first), end), "-noaccurate_seek",
        *input_args(src, max_pixels=max_pixels),
        "-filter_complex", chain, "-map", "[v]",
        *encoder_args(index, first, end, crf=crf, preset=preset), *after,
        "-fps_mode", "passthrough", "-f", "mpegts", str(piece),
    ]  # fmt: skip


def encoder_args(index: VideoIndex, first: int, end: int, *, crf: int, preset: str) -> list[str]:
    """x264/x265 options giving the source's profile, level, pixels, colours and keyframe rhythm."""
    s = index.stream
    fps = float(index.fps)
    # Keyframes where the source had them, so the joined stream keeps the source's segment grid.
    keys = [(g.key - first - 0.25) / fps for g in index.gops if first < g.key < end]
    longest = max(g.end - g.first for g in index.gops)
    args = ["-pix_fmt", str(s.pix_fmt), *colour_args(s), "-g", str(longest), "-forced-idr", "1"]
    if keys:
        args += ["-force_key_frames", ",".join(f"{t:.6f}" for t in keys)]
    if s.codec == "h264":
        profile = X264_PROFILES.get(str(s.profile))
        if profile is None:
            raise InexactSource(f"H.264 {s.profile} cannot be re-encoded to match")
        args = ["-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-profile:v", profile, *args]
        if s.level:
            args += ["-level:v", str(s.level)]
        args += ["-sc_threshold", "0", "-bf", "0"] if not index.reorder else ["-sc_threshold", "0"]
        return args
    profile = X265_PROFILES.get(str(s.profile))
    if profile is None:
        raise InexactSource(f"HEVC {s.profile} cannot be re-encoded to match")
    params = ["log-level=error", "open-gop=0", "scenecut=0", "repeat-headers=1", "min-keyint=1"]
    if s.level:
        params.append(f"level-idc={s.level / 30:.1f}")
    if not index.reorder:
        params.append("bframes=0")
    return ["-c:v", "libx265", "-preset", preset, "-crf", str(crf), "-profile:v", profile, *args,
            "-x265-params", ":".join(params)]  # fmt: skip


def encoder_reason(s: VideoStream) -> str | None:
    """Why no encoder here can repeat the stream's codec parameters, or None when one can."""
    profiles, formats = (X264_PROFILES, X264_FORMATS) if s.codec == "h264" else (X265_PROFILES, X265_FORMATS)
    if str(s.profile) not in profiles:
        return f"{'H.264' if s.codec == 'h264' else 'HEVC'} {s.profile} profile cannot be re-encoded to match"
    if s.pix_fmt not in formats:
        return f"the {s.pix_fmt} pixel format cannot be re-encoded to match"
    return None


def colour_args(s: VideoStream) -> list[str]:
    """The source's colour description as encoder options (unset values stay unset)."""
    args = []
    for field, option in _COLOUR_OPTIONS.items():
        value = str(getattr(s, field) or "")
        if value not in _UNSET and _NAME.fullmatch(value):
            args += [option, "rgb" if value == "gbr" else value]
    return args


def concat_list(pieces: Sequence[Piece], fps: float, directory: Path) -> Path:
    """An ffconcat script naming each piece (relative names: the demuxer's safe mode accepts them)."""
    lines = ["ffconcat version 1.0"]
    shown = 0
    for piece in pieces:
        # Durations from the frame count, rounded so the running start stays on the frame grid.
        start_us, end_us = round(shown / fps * 1e6), round((shown + piece.frames) / fps * 1e6)
        lines += [f"file '{piece.path.name}'", f"duration {(end_us - start_us) / 1e6:.6f}"]
        shown += piece.frames
    listing = directory / "pieces.ffconcat"
    listing.write_text("\n".join(lines) + "\n")
    return listing


def concat_input(listing: Path) -> list[str]:
    """The concat demuxer over our own pieces: it may open MPEG-TS files next to the list, nothing else."""
    return [
        "-protocol_whitelist", INPUT_PROTOCOLS, "-format_whitelist", "concat,mpegts",
        "-f", "concat", "-safe", "1", "-i", f"file:{listing.resolve()}",
    ]  # fmt: skip


def retime_bsf(fps: float, reorder: int, offset_s: float = 0.0) -> str:
    """setts for the joined stream: each frame on its grid slot, decode times evenly spaced behind.

    ffmpeg 5.1 gives a stream copy's bitstream filter the muxer's time base; the mp4 muxer keeps the pieces'
    90 kHz, which is what the expressions count in.
    """
    tick = PIECE_TICKS_PER_S / fps
    offset = round(offset_s * PIECE_TICKS_PER_S)
    pts = f"round(round(PTS/{tick:.9f})*{tick:.9f})+{offset}"
    dts = f"round((N-{reorder})*{tick:.9f})+{offset}"
    return f"setts=pts='{pts}':dts='{dts}'"


def piece_reorder(piece: Piece, *, max_pixels: int | None) -> int:
    """The B-frame delay of a re-encoded piece; InexactSource unless it shows exactly its frames."""
    done = process.run(
        [FFPROBE, "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts",
         "-of", "csv=p=0", *input_args(piece.path, max_pixels=max_pixels)],
        capture_stdout=True, on_stderr=watch_pixels(), limits=probe_limits(), network=False,
    )  # fmt: skip
    pts = [
        int(v) for v in (line.strip().strip(",") for line in done.stdout.splitlines()) if _INT.fullmatch(v)
    ]
    if len(pts) != piece.frames:
        raise InexactSource(f"a re-encoded piece holds {len(pts)} frames instead of {piece.frames}")
    slot = {t: p for p, t in enumerate(sorted(pts))}
    return max(0, *(n - slot[t] for n, t in enumerate(pts)))


def count_frames(path: Path, *, max_pixels: int | None) -> int:
    """How many video packets `path` holds (-1 when ffprobe cannot say)."""
    done = process.run(
        [FFPROBE, "-v", "error", "-select_streams", "v:0", "-count_packets", "-show_entries",
         "stream=nb_read_packets", "-of", "csv=p=0", *input_args(path, max_pixels=max_pixels)],
        capture_stdout=True, on_stderr=watch_pixels(), limits=probe_limits(), network=False,
    )  # fmt: skip
    text = done.stdout.strip().strip(",")
    return int(text) if text.isdigit() else -1
