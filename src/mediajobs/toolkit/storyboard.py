"""Storyboards: small frames at regular times tiled into JPEG sprite sheets, and the WebVTT that maps them.

The WebVTT is what video.js, Plyr, Vidstack, Shaka and the Mux and PeerTube players read for previews on
their timeline: each cue covers one interval and its text is a sheet's URL, relative to the VTT, with a W3C
media fragment `#xywh=x,y,w,h` naming the tile. One ffmpeg pass makes every sheet: `fps` picks the frame
shown at each cue's start (`round=up`: the last frame whose time is not after it), `scale` and `tile`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mediajobs.errors import UnsupportedMedia
from mediajobs.toolkit.ffmpeg import run_ffmpeg, thread_args
from mediajobs.toolkit.inputs import segments_input_args, write_segment_list
from mediajobs.toolkit.probe import Probe
from mediajobs.toolkit.progress import FractionCallback

TILE_WIDTH = 160
MAX_TILES = 200
MAX_GRID = 10  # tiles per row and rows per sheet
SHEET_NAME = "sheet_{:03d}.jpg"
VTT_NAME = "storyboard.vtt"
JPEG_QUALITY = 4  # ffmpeg's -q:v: 2 best .. 31 worst


@dataclass(frozen=True)
class Layout:
    """How a storyboard is cut: one tile every `interval_s`, `count` tiles, `columns` x `rows` per sheet."""

    interval_s: float
    count: int
    tile_width: int
    tile_height: int
    columns: int
    rows: int

    @property
    def per_sheet(self) -> int:
        return self.columns * self.rows

    @property
    def sheets(self) -> int:
        return math.ceil(self.count / self.per_sheet)

    def tile(self, k: int) -> tuple[int, int, int, int, int]:
        """(sheet, x, y, w, h) of tile `k`."""
        sheet, place = divmod(k, self.per_sheet)
        row, column = divmod(place, self.columns)
        return sheet, column * self.tile_width, row * self.tile_height, self.tile_width, self.tile_height


def plan(duration_s: float, width: int, height: int) -> Layout:
    """Whole seconds between tiles: one a second up to MAX_TILES seconds, then fewer, never over MAX_TILES."""
    if duration_s <= 0 or width <= 0 or height <= 0:
        raise UnsupportedMedia("a storyboard needs a video with a duration and a picture size")
    interval = max(1, math.ceil(duration_s / MAX_TILES - 1e-9))
    count = max(1, math.ceil(duration_s / interval - 1e-9))
    tile_height = max(2, round(TILE_WIDTH * height / width / 2) * 2)
    columns = min(MAX_GRID, count)
    rows = min(MAX_GRID, math.ceil(count / columns))
    return Layout(float(interval), count, TILE_WIDTH, tile_height, columns, rows)


def render(
    segments: Sequence[Path],
    out_dir: Path,
    layout: Layout,
    probe: Probe,
    *,
    threads: int = 0,
    on_progress: FractionCallback | None = None,
) -> list[Path]:
    """The sheets of `layout` from a rendition's MPEG-TS `segments` (their first frame is time 0)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    thread_in, thread_out = thread_args(threads)
    chain = ",".join(
        [
            # Past the picture's end (sound may last longer) the last frame stays on screen: so do the tiles.
            f"tpad=stop_mode=clone:stop_duration={layout.count * layout.interval_s:.3f}",
            f"fps=fps=1/{layout.interval_s:g}:start_time=0:round=up",
            f"trim=end_frame={layout.count}",
            f"scale={layout.tile_width}:{layout.tile_height},setsar=1",
            f"tile={layout.columns}x{layout.rows}",
        ]
    )
    args = ["-v", "error", *thread_in]
    args += segments_input_args(write_segment_list(list(segments), out_dir / "segments.txt"))
    args += ["-map", "0:V:0", "-vf", chain, "-fps_mode", "passthrough", *thread_out]
    args += ["-q:v", str(JPEG_QUALITY), "-start_number", "0", "-f", "image2"]
    pattern = str(out_dir / SHEET_NAME.replace("{:03d}", "%03d"))
    run_ffmpeg([*args, pattern], probe.duration, on_progress, source=probe)
    (out_dir / "segments.txt").unlink(missing_ok=True)
    sheets = [out_dir / SHEET_NAME.format(i) for i in range(layout.sheets)]
    missing = [s.name for s in sheets if not s.is_file()]
    if missing:
        raise UnsupportedMedia(f"ffmpeg wrote no storyboard sheet {missing[0]}")
    return sheets


def vtt(layout: Layout, duration_s: float) -> str:
    """The WebVTT: cue k spans [k, k+1) intervals (the last ends with the video) and names tile k."""
    lines = ["WEBVTT", ""]
    for k in range(layout.count):
        start = k * layout.interval_s
        end = min((k + 1) * layout.interval_s, max(duration_s, start + 0.001))
        sheet, x, y, w, h = layout.tile(k)
        tile = f"{SHEET_NAME.format(sheet)}#xywh={x},{y},{w},{h}"
        lines += [f"{_clock(start)} --> {_clock(end)}", tile, ""]
    return "\n".join(lines)


def _clock(seconds: float) -> str:
    ms = round(seconds * 1000)
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"
