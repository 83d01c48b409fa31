"""ffprobe as a typed record: what a media file holds, in display terms."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mediajobs import process
from mediajobs.errors import TooLarge, UnsupportedMedia
from mediajobs.toolkit import plain
from mediajobs.toolkit.inputs import input_args, probe_limits, refused_format, watch_pixels

FFPROBE = "ffprobe"
PROBE_TIMEOUT_S = 60.0
# No camera or screen recorder delivers more; a higher claim only multiplies the frames an encode makes.
MAX_FPS = 240.0
# The fewest bytes a real source spends per second: a 64x64 black picture at 1 fps costs about 20 B/s in
# H.264, 8 kbit/s AAC silence about 95 B/s. A 1.3 KB mkv claiming 100,001 s has 0.013 B/s.
MIN_BYTES_PER_S = 4.0


@dataclass(frozen=True)
class Probe:
    """What ffprobe found in a file. Width and height are the displayed size (rotation applied)."""

    duration: float
    size: int
    format_name: str
    width: int | None
    height: int | None
    fps: float | None
    video_codec: str | None
    audio_codec: str | None
    rotation: int
    bit_rate: int | None
    audio_channels: int | None
    audio_sample_rate: int | None
    nb_frames: int | None
    # What decides whether browsers play the video stream as it is (fast start: hls.standard_reason).
    video_profile: str | None = None
    video_level: int | None = None
    pix_fmt: str | None = None
    field_order: str | None = None
    audio_profile: str | None = None
    # Where the source's timeline starts (seconds): ffmpeg counts every time given to it from here.
    start_time: float = 0.0
    # The per-frame pixel bound the source was accepted under; every decode of it keeps to it (input_args).
    max_pixels: int | None = None

    @property
    def has_video(self) -> bool:
        return self.video_codec is not None

    @property
    def has_audio(self) -> bool:
        return self.audio_codec is not None

    def public(self) -> dict[str, Any]:
        """The `probe` object of the media JSON contract."""
        return {
            "duration": self.duration,
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
            "video_codec": self.video_codec,
            "audio_codec": self.audio_codec,
            "size": self.size,
        }


def probe(
    path: str | Path,
    *,
    max_duration_s: float | None = None,
    max_pixels: int | None = None,
    max_fps: float = MAX_FPS,
    min_bytes_per_s: float = MIN_BYTES_PER_S,
) -> Probe:
    """Probe `path`; raise UnsupportedMedia when it is not a plausible video or audio file.

    Sources longer than `max_duration_s` or with more than `max_pixels` per frame raise TooLarge; the
    Probe carries `max_pixels` so that every later decode refuses a frame over it too.
    """
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise UnsupportedMedia("the file is empty (0 bytes); upload the video or audio file itself")
    args = [FFPROBE, "-v", "error", "-print_format", "json", "-show_format", "-show_streams"]
    done = process.run(
        [*args, *input_args(path, max_pixels=max_pixels)],
        capture_stdout=True,
        on_stderr=watch_pixels(),
        timeout_s=PROBE_TIMEOUT_S,
        check=False,
        limits=probe_limits(),
        network=False,
    )
    if done.returncode != 0:
        refusal = refused_format(done.stderr_tail)
        if refusal is not None:
            raise UnsupportedMedia(refusal)
        raise UnsupportedMedia(plain.unreadable(_reason(process.last_words(done.stderr_tail), path)))
    info = dataclasses.replace(parse(json.loads(done.stdout or "{}"), size=size), max_pixels=max_pixels)
    check(
        info,
        max_duration_s=max_duration_s,
        max_pixels=max_pixels,
        max_fps=max_fps,
        min_bytes_per_s=min_bytes_per_s,
    )
    return info


def check(
    info: Probe,
    *,
    max_duration_s: float | None = None,
    max_pixels: int | None = None,
    max_fps: float = MAX_FPS,
    min_bytes_per_s: float = MIN_BYTES_PER_S,
) -> None:
    """Refuse a source whose header claims more than its bytes can hold, or over the limits (TooLarge)."""
    # Forgery first: a 1.3 KB file claiming a day is not "too long", it is not a real video.
    if info.size / info.duration < min_bytes_per_s:
        raise UnsupportedMedia(
            f"the file claims to last {_clock(info.duration)} but holds only {info.size} bytes: its "
            "timestamps are broken or forged"
        )
    if max_duration_s is not None and info.duration > max_duration_s:
        raise TooLarge(
            f"the source lasts {_clock(info.duration)}, longer than the {_clock(max_duration_s)} allowed "
            "(MEDIAJOBS_MAX_DURATION_S)"
        )
    if max_pixels is not None and info.width and info.height and info.width * info.height > max_pixels:
        raise TooLarge(
            f"the picture is {info.width}x{info.height}, more than the {max_pixels} pixels per frame "
            "allowed (MEDIAJOBS_MAX_PIXELS)"
        )
    if info.fps is not None and info.fps > max_fps:
        raise UnsupportedMedia(
            f"the video claims {info.fps:g} frames per second; at most {max_fps:g} is real"
        )


def _clock(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}" if whole >= 60 else f"{seconds:g} s"


def _reason(message: str, path: Path) -> str:
    # ffprobe prefixes its complaint with the path; the path means nothing to the user reading the job error.
    # Neither does the "[mov,mp4,... @ 0x55d...] " tag in front of a demuxer's complaint.
    reason = message.replace(f"file:{path.resolve()}: ", "").replace(f"{path}: ", "")
    reason = re.sub(r"\[[^\]]* @ 0x[0-9a-f]+\] ", "", reason)
    return reason.replace(" | ", "; ").strip() or "unknown error"


def parse(data: dict[str, Any], *, size: int) -> Probe:
    """Build a Probe from ffprobe's JSON (`-show_format -show_streams`)."""
    fmt: dict[str, Any] = data.get("format") or {}
    streams: list[dict[str, Any]] = data.get("streams") or []
    # Cover art in music files is a one-frame "video" stream; it is not a picture anyone wants transcoded.
    video = next(
        (
            s
            for s in streams
            if s.get("codec_type") == "video" and not (s.get("disposition") or {}).get("attached_pic")
        ),
        None,
    )
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    if video is None and audio is None:
        raise UnsupportedMedia("the file holds no video or audio (only subtitles, data or pictures)")

    duration = _float(fmt.get("duration"))
    if not duration:
        duration = max((_float(s.get("duration")) or 0.0 for s in streams), default=0.0)
    if not duration or duration <= 0:
        raise UnsupportedMedia("the file holds no playing time (its duration is zero)")

    width = height = None
    rotation = 0
    fps = None
    if video is not None:
        width, height = _int(video.get("width")), _int(video.get("height"))
        rotation = _rotation(video)
        if rotation in (90, 270):
            width, height = height, width
        fps = _rate(video.get("avg_frame_rate")) or _rate(video.get("r_frame_rate"))

    return Probe(
        duration=duration,
        size=size,
        format_name=str(fmt.get("format_name") or ""),
        width=width,
        height=height,
        fps=fps,
        video_codec=video.get("codec_name") if video else None,
        audio_codec=audio.get("codec_name") if audio else None,
        rotation=rotation,
        bit_rate=_int(fmt.get("bit_rate")),
        audio_channels=_int(audio.get("channels")) if audio else None,
        audio_sample_rate=_int(audio.get("sample_rate")) if audio else None,
        nb_frames=_int(video.get("nb_frames")) if video else None,
        video_profile=video.get("profile") if video else None,
        video_level=_int(video.get("level")) if video else None,
        pix_fmt=video.get("pix_fmt") if video else None,
        field_order=video.get("field_order") if video else None,
        audio_profile=audio.get("profile") if audio else None,
        start_time=_float(fmt.get("start_time")) or 0.0,
    )


def _rotation(stream: dict[str, Any]) -> int:
    """Clockwise degrees the player turns the picture, normalised to 0/90/180/270."""
    for side in stream.get("side_data_list") or []:
        if "rotation" in side:
            # The display matrix angle is counter-clockwise; the legacy `rotate` tag is clockwise.
            return _quarter(-float(side["rotation"]))
    tag = _float((stream.get("tags") or {}).get("rotate"))
    return _quarter(tag) if tag is not None else 0


def _quarter(degrees: float) -> int:
    return round(degrees / 90.0) % 4 * 90


def _rate(value: Any) -> float | None:
    if not isinstance(value, str) or "/" not in value:
        return _float(value) or None
    num, _, den = value.partition("/")
    n, d = _float(num), _float(den)
    if not n or not d:
        return None
    return round(n / d, 3)


def _float(value: Any) -> float | None:
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return result if math.isfinite(result) else None


def _int(value: Any) -> int | None:
    number = _float(value)
    return int(number) if number is not None else None
