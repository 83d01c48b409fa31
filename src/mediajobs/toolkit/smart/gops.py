"""Whether smart rendering can reproduce a video stream exactly, judged from its packet index.

Smart rendering copies whole GOPs and re-encodes the rest, so the index (`packets.VideoIndex`) must describe
the pictures exactly: one codec ffmpeg and browsers splice well (H.264, HEVC), constant frame rate,
progressive frames, every packet timed, and keyframes that split the stream cleanly: the first k packets in
decode order show exactly the first k frames, whatever their reordering inside. `InexactSource` carries the
reason when not.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from mediajobs.errors import ProcessFailed, UnsupportedMedia
from mediajobs.toolkit import nal, packets
from mediajobs.toolkit.ffmpeg import run_ffmpeg, source_input
from mediajobs.toolkit.packets import VideoIndex
from mediajobs.toolkit.probe import Probe

SMART_CODECS = ("h264", "hevc")
# Re-encoding a boundary GOP is the price of each cut; past this, keyframes are too sparse to be worth it.
MAX_GOP_S = 10.0
# Every frame must sit this close (in frame durations) to its slot on a constant-rate grid.
GRID_TOLERANCE = 0.25
INTERLACED = ("tt", "bb", "tb", "bt")


class InexactSource(Exception):
    """The source cannot be smart-rendered exactly; the message says why, for the job result."""


@dataclass(frozen=True)
class Starts:
    """The GOPs (numbers) whose keyframe can begin a copy after a cut or a re-encoded part.

    `fresh`: an IDR (or HEVC BLA), where a decoder starts afresh. `splice`: an HEVC CRA, which does once
    the copy's first picture is marked as a BLA (nal.splice_at_cra).
    """

    fresh: frozenset[int]
    splice: frozenset[int]

    @property
    def all(self) -> frozenset[int]:
        return self.fresh | self.splice


def read_index(path: str | Path, source: Probe, *, max_gop_s: float = MAX_GOP_S) -> VideoIndex:
    """Index the first video stream of `path`; raise InexactSource when smart rendering cannot be exact."""
    try:
        index = packets.scan(path, duration_s=source.duration, max_pixels=source.max_pixels)
    except ProcessFailed as exc:
        raise InexactSource(f"ffprobe could not index the packets: {exc}") from exc
    except UnsupportedMedia as exc:
        raise InexactSource(str(exc)) from exc
    check(index, max_gop_s=max_gop_s)
    return index


def check(index: VideoIndex, *, max_gop_s: float = MAX_GOP_S) -> None:
    """Raise InexactSource unless copying GOPs of `index` and re-encoding the rest reproduces it exactly."""
    s = index.stream
    if s.codec not in SMART_CODECS:
        raise InexactSource(f"the video is {s.codec}, not H.264 or HEVC")
    if index.count < 2:
        raise InexactSource("the video has fewer than two frames")
    if index.untimed:
        raise InexactSource("some packets have no presentation time")
    if index.discarded or index.corrupt:
        raise InexactSource("some packets are marked corrupt or hidden by an edit list")
    if s.frame_rate is None:
        raise InexactSource("all frames have the same presentation time")
    if s.field_order in INTERLACED:
        raise InexactSource("the video is interlaced")
    if not s.width or not s.height:
        raise InexactSource("the video has no picture size")
    if len(set(index.pts)) != index.count:
        raise InexactSource("two packets share a presentation time")
    if not index.keys or index.keys[0] != 0:
        raise InexactSource("the video does not start with a keyframe")
    ticks, shown = index.frame_ticks, index.shown_pts
    for p, t in enumerate(shown):
        if abs(t - shown[0] - p * ticks) > GRID_TOLERANCE * ticks:
            raise InexactSource(f"the frame rate varies (frame {p} is off the {float(index.fps):g} fps grid)")
    # Keyframes must split decode order cleanly: packets before keyframe k show exactly frames 0..k-1.
    highest = -1
    boundaries = set(index.keys)
    for n, p in enumerate(index.display):
        if n in boundaries and highest >= n:
            raise InexactSource(f"frames before the keyframe at packet {n} are shown after it")
        highest = max(highest, p)
    if index.gops[0].leading:
        raise InexactSource("the first keyframe has frames before it that cannot be decoded")
    if index.longest_gop_s > max_gop_s:
        raise InexactSource(
            f"keyframes are up to {index.longest_gop_s:.1f} s apart, more than the {max_gop_s:g} s "
            "a smart render re-encodes per cut"
        )


def copy_starts(src: Path, index: VideoIndex, source: Probe, *, work_dir: Path) -> Starts:
    """Which GOPs can begin a copy, from one copy pass over the packets' NAL units (no decoding).

    InexactSource when the parameter sets declare other pictures than the probed ones: copied frames are
    never decoded, so they would never be checked against MEDIAJOBS_MAX_PIXELS.
    """
    s = index.stream
    with tempfile.TemporaryDirectory(prefix=".smart-units-", dir=work_dir) as tmp:
        directory = Path(tmp)
        outputs = nal.keyframe_outputs(s.codec, directory)
        run_ffmpeg(["-v", "error", "-copyts", *source_input(src, source), *outputs], source.duration, None,
                   source=source)  # fmt: skip
        keyframes = nal.read_keyframes(directory, s.codec)
    if keyframes.pictures is None:
        raise InexactSource("the video's parameter sets cannot be read")
    declared = sorted(str(p) for p in keyframes.pictures)
    if len(declared) > 1 or any((p.width, p.height) != (s.width, s.height) for p in keyframes.pictures):
        raise InexactSource(f"the picture changes mid-stream ({', '.join(declared)})")
    at = [index.pts[k] for k in index.keys]
    return Starts(
        fresh=frozenset(g for g, pts in enumerate(at) if pts in keyframes.fresh),
        splice=frozenset(g for g, pts in enumerate(at) if pts in keyframes.cra),
    )
