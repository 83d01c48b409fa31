"""How every ffmpeg and ffprobe call reads stored media: allowlists, a pixel bound, a read limit, CPU time.

A file from a stranger may be a playlist or a script rather than media: ffprobe detects an HLS playlist or an
ffconcat file by its content whatever it is named, and those demuxers open every path or URL they list. So
each input is opened through the `file` protocol only, by a demuxer of real media containers only; anything
else is refused before its header is read (ffmpeg checks the format allowlist right after probing).

A stream may also grow: a picture size is only what the probed frames say, and a later frame may be 8K. So
every decoder gets `-max_pixels` and refuses any frame over it (every decoder of ffmpeg 5.1 allocates its
pictures through a check of that bound), and `watch_pixels` turns the refusal into `TooLarge`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from mediajobs.errors import TooLarge
from mediajobs.sandbox import Limits

# ffmpeg matches a demuxer when any of its comma-separated names ("mov,mp4,m4a,3gp,3g2,mj2",
# "matroska,webm") is in this list (av_match_list). Left out on purpose: playlists and manifests (hls, dash),
# scripts (concat, ffmetadata), image sequences and pictures (image2, *_pipe, gif, apng), text (tty,
# subtitles), network and device inputs (rtp, rtsp, sdp, lavfi) and raw elementary video without timestamps.
MEDIA_FORMATS = (
    "mov,mp4,matroska,webm,mpegts,mpeg,avi,flv,asf,mxf,dv,ogg,mp3,aac,ac3,eac3,flac,wav,w64,aiff,caf,wv"
)
# Every input is a local file; nothing else (http, pipe:, concat:, subfile:, data:) may be opened.
INPUT_PROTOCOLS = "file"

# CPU seconds a child may burn: a base for start-up and short files, plus so many per second of media per
# output. A veryfast 1080p encode needs about one CPU second per media second; the budget stops runaways only.
CPU_BASE_S = 120.0
CPU_PER_MEDIA_S = 60.0
PROBE_CPU_S = 30.0

# Demuxers ffmpeg names in "Format not on whitelist" that users upload by mistake, and what to do instead.
_REFUSED = {
    "hls": "HLS playlists cannot be uploaded; upload the video file itself",
    "dash": "DASH manifests cannot be uploaded; upload the video file itself",
    "webm_dash_manifest": "DASH manifests cannot be uploaded; upload the video file itself",
    "concat": "concat scripts are not media; upload the video file itself",
    "ffmetadata": "ffmetadata files are not media; upload a video or audio file",
    "tty": "text files are not media; upload a video or audio file",
    "sdp": "SDP session descriptions are not media; upload a video or audio file",
}
_SUBTITLES = {"srt", "ass", "webvtt", "subviewer", "subviewer1", "microdvd", "sami", "jacosub", "vobsub"}
# libavutil/imgutils.c: what every decoder logs when it refuses a picture over its max_pixels.
_OVER_MAX_PIXELS = re.compile(r"Picture size (\d+)x(\d+) exceeds specified max pixel count (\d+)")
_NOT_ON_LIST = re.compile(r"\[([\w,]+) @ 0x[0-9a-f]+\] Format not on whitelist")


def input_args(path: str | Path, *, duration_s: float | None = None, max_pixels: int | None) -> list[str]:
    """`-i` for `path` with the allowlists, reading at most a little past `duration_s` when given.

    `max_pixels` bounds every decoded frame (width x height; None: no bound). Pass the limit the source was
    probed under (`Probe.max_pixels`): a stream whose pictures grow after the probed ones stops there.
    """
    args = ["-protocol_whitelist", INPUT_PROTOCOLS, "-format_whitelist", MEDIA_FORMATS]
    if max_pixels is not None:
        # `:V`: video streams but cover pictures, which ffmpeg decodes on opening any file (music with a big
        # cover stays music); the video's every frame is bounded.
        args += ["-max_pixels:V", str(max_pixels)]
    if duration_s is not None:
        args += ["-t", f"{read_limit_s(duration_s):.3f}"]
    # "file:" so that a name such as "concat:a|b" or "http:x" can never be read as a protocol.
    return [*args, "-i", f"file:{Path(path).resolve()}"]


def segments_input_args(list_file: Path) -> list[str]:
    """`-i` for MPEG-TS segments this service made, read back to back as one stream (`concatf` protocol).

    Only for our own HLS segments (read where the storage keeps them, or fetched by the caller), listed by
    the caller in `list_file` (one absolute path a line): each part is opened through `file` and must be
    MPEG-TS, as the ladder wrote it. Byte
    concatenation keeps the ladder's one timeline (its segments were cut from one stream).
    """
    args = ["-protocol_whitelist", "concatf,file", "-format_whitelist", "mpegts"]
    return [*args, "-i", f"concatf:{Path(list_file).resolve()}"]


def write_segment_list(paths: list[Path], list_file: Path) -> Path:
    """The `concatf` list of `paths` for `segments_input_args`."""
    list_file.write_text("".join(f"{Path(p).resolve()}\n" for p in paths))
    return list_file


def watch_pixels(then: Callable[[str], None] | None = None) -> Callable[[str], None]:
    """A stderr callback for ffmpeg/ffprobe: TooLarge the moment a decoder refuses a frame over `-max_pixels`.

    Raised in the runner's thread, it stops the child at once; a refused frame would otherwise only be
    concealed (ffmpeg carries on without it) and the output would silently lose the rest of the stream.
    """

    def watch(line: str) -> None:
        match = _OVER_MAX_PIXELS.search(line)
        if match is not None:
            width, height, limit = match.groups()
            raise TooLarge(
                f"a frame of the video is {width}x{height}, more than the {limit} pixels per frame allowed "
                "(MEDIAJOBS_MAX_PIXELS)"
            )
        if then is not None:
            then(line)

    return watch


def read_limit_s(duration_s: float) -> float:
    """How far into a source an encode reads: its probed duration and a margin for estimated durations.

    A header may claim a short duration for a file whose frames go on for hours; the encode stops near
    the claim instead of running to the real end of the bytes.
    """
    return duration_s * 1.1 + 2.0


def encode_limits(duration_s: float, *, outputs: int = 1) -> Limits:
    """The CPU-time limit of an ffmpeg run over `duration_s` of media making `outputs` encodes."""
    return Limits(cpu_s=CPU_BASE_S + CPU_PER_MEDIA_S * duration_s * max(1, outputs))


def probe_limits() -> Limits:
    """The CPU-time limit of one ffprobe run (it reads headers and a few seconds of packets)."""
    return Limits(cpu_s=PROBE_CPU_S)


def refused_format(stderr: str) -> str | None:
    """What to tell the user when ffmpeg refused a demuxer that is not on the allowlist, else None."""
    match = _NOT_ON_LIST.search(stderr)
    if match is None:
        return None
    names = match.group(1).split(",")
    for name in names:
        if name in _REFUSED:
            return _REFUSED[name]
    if _SUBTITLES.intersection(names):
        return "subtitle files are not media; upload a video or audio file"
    if any(n.endswith("_pipe") or n in ("image2", "gif", "apng", "webp") for n in names):
        return "pictures are not video; upload a video or audio file"
    return f"{names[0]} files are not supported; upload a video or audio file (MP4, MOV, MKV, WebM, TS, ...)"
