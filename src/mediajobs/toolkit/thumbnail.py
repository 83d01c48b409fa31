"""A JPEG thumbnail from a representative, non-black frame of a video."""

from __future__ import annotations

from pathlib import Path

from mediajobs import process
from mediajobs.errors import ProcessFailed, UnsupportedMedia
from mediajobs.toolkit.inputs import encode_limits, input_args
from mediajobs.toolkit.probe import Probe

FFMPEG = "ffmpeg"
SEEK_FRACTION = 0.2
BATCH_S = 4.0
THUMBNAIL_TIMEOUT_S = 120.0


class ThumbnailFailed(ProcessFailed):
    """No thumbnail could be made; the asset is still usable without one."""

    code = "thumbnail_failed"


def make_thumbnail(src: str | Path, out_path: str | Path, probe: Probe, *, width: int = 640) -> Path:
    """Write a JPEG at most `width` wide to `out_path`; raise a PermanentError if no frame is usable."""
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
    if _render(src, out_path, probe, seek_s, filters, width):
        return out_path
    # Nothing but black after the seek point (a dark or very short video): any frame beats no thumbnail.
    if _render(src, out_path, probe, 0.0, [f"thumbnail=n={batch}"], width):
        return out_path
    raise ThumbnailFailed("ffmpeg produced no frame for the thumbnail")


def _render(src: Path, out_path: Path, probe: Probe, seek_s: float, filters: list[str], width: int) -> bool:
    out_path.unlink(missing_ok=True)
    chain = ",".join([*filters, f"scale='min({width},iw)':-2", "format=yuvj420p"])
    args = [FFMPEG, "-nostdin", "-v", "error", "-y"]
    if seek_s > 0:
        args += ["-ss", f"{seek_s:.3f}"]
    args += input_args(src, duration_s=probe.duration)
    args += ["-map", "0:V:0", "-vf", chain, "-frames:v", "1", "-update", "1", "-q:v", "3", str(out_path)]
    try:
        # A dark video may be decoded to its end looking for a frame that is not black.
        limits = encode_limits(probe.duration)
        process.run(args, timeout_s=THUMBNAIL_TIMEOUT_S, limits=limits, network=False)
    except ProcessFailed as exc:
        raise ThumbnailFailed(f"thumbnail failed: {exc}") from exc
    return out_path.exists() and out_path.stat().st_size > 0
