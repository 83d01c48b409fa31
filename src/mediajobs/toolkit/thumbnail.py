"""A JPEG thumbnail from a representative, non-black frame of a video, and the time of that frame."""

from __future__ import annotations

import re
from pathlib import Path

from mediajobs import process
from mediajobs.errors import ProcessFailed, UnsupportedMedia
from mediajobs.toolkit.downloads import first_number
from mediajobs.toolkit.ffmpeg import FFMPEG, NO_METADATA, source_input
from mediajobs.toolkit.inputs import encode_limits, input_args, probe_limits, watch_pixels
from mediajobs.toolkit.probe import FFPROBE, Probe

SEEK_FRACTION = 0.2
BATCH_S = 4.0
THUMBNAIL_TIMEOUT_S = 120.0


class ThumbnailFailed(ProcessFailed):
    """No thumbnail could be made; the asset is still usable without one."""

    code = "thumbnail_failed"


def make_thumbnail(src: str | Path, out_path: str | Path, probe: Probe, *, width: int = 640) -> Path:
    """Write a JPEG at most `width` wide to `out_path`; raise a PermanentError if no frame is usable."""
    return pick_thumbnail(src, out_path, probe, width=width)[0]


def pick_thumbnail(
    src: str | Path, out_path: str | Path, probe: Probe, *, width: int = 640, first_pts: float | None = None
) -> tuple[Path, float | None]:
    """`make_thumbnail`, and the time of the frame it shows: seconds after the first frame (`first_pts`,
    the video's first presentation time, is read from the file when not given); None if ffmpeg did not say."""
    if not probe.has_video:
        raise UnsupportedMedia("no video stream to make a thumbnail from")
    src, out_path = Path(src), Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    # Intros and fades are black: start a fifth of the way in, skip black frames, then let the `thumbnail`
    # filter pick the most typical frame of the next few seconds.
    seek_s = probe.duration * SEEK_FRACTION if probe.duration > 1.0 else 0.0
    batch = max(2, min(120, round((probe.fps or 25.0) * BATCH_S)))
    filters = [
        "blackframe=amount=0:threshold=32",
        "metadata=mode=select:key=lavfi.blackframe.pblack:value=95:function=less",
        f"thumbnail=n={batch}",
    ]
    for seek, chain in ((seek_s, filters), (0.0, [f"thumbnail=n={batch}"])):
        # Nothing but black after the seek point (a dark or very short video): any frame beats no thumbnail.
        shown = _render(src, out_path, probe, seek, chain, width)
        if shown is not None:
            if shown < 0:
                return out_path, None
            start = first_pts if first_pts is not None else _first_video_pts(src, probe)
            return out_path, None if start is None else max(0.0, round(shown - start, 6))
    raise ThumbnailFailed("ffmpeg produced no frame for the thumbnail")


_SHOWN = re.compile(r"Parsed_showinfo.*\bpts_time:\s*(-?[0-9.]+)")


def _render(
    src: Path, out_path: Path, probe: Probe, seek_s: float, filters: list[str], width: int
) -> float | None:
    """The presentation time of the frame written (-1 when unknown), None when none was."""
    out_path.unlink(missing_ok=True)
    chain = ",".join([*filters, "showinfo", f"scale='min({width},iw)':-2", "format=yuvj420p"])
    # Timestamps as in the file (-copyts), so the frame's time can be told; showinfo speaks at info level.
    args = [FFMPEG, "-nostdin", "-v", "info", "-hide_banner", "-nostats", "-y", "-copyts"]
    if seek_s > 0:
        args += ["-ss", f"{seek_s:.3f}"]
    args += source_input(src, probe)
    args += ["-map", "0:V:0", "-vf", chain, "-frames:v", "1", "-update", "1", "-q:v", "3", *NO_METADATA]
    args.append(str(out_path))
    shown: list[float] = []

    def said(line: str) -> None:
        if (found := _SHOWN.search(line)) is not None:
            shown.append(float(found[1]))

    try:
        # A dark video may be decoded to its end looking for a frame that is not black.
        limits = encode_limits(probe.duration)
        process.run(
            args, timeout_s=THUMBNAIL_TIMEOUT_S, limits=limits, network=False, on_stderr=watch_pixels(said)
        )
    except ProcessFailed as exc:
        raise ThumbnailFailed(f"thumbnail failed: {exc}") from exc
    if not (out_path.exists() and out_path.stat().st_size > 0):
        return None
    return shown[0] if shown else -1.0


def _first_video_pts(src: Path, probe: Probe) -> float | None:
    args = [FFPROBE, "-v", "error", "-select_streams", "V:0", "-show_entries", "stream=start_time"]
    done = process.run(
        [*args, "-of", "csv=p=0", *input_args(src, max_pixels=probe.max_pixels)],
        capture_stdout=True,
        on_stderr=watch_pixels(),
        timeout_s=60,
        limits=probe_limits(),
        network=False,
    )
    return first_number(done.stdout or "")
