"""Sources carrying metadata in every place their container has for it, and the check that a file we made
carries none of it.

Every tag value, chapter title, subtitle, attachment and SEI message of a tagged source holds MARKER (or the
GPS position), so finding it anywhere in an output (its bytes, or what ffprobe reads from it) is a leak; tags
that are not the muxers' own (a creation time, a language) are leaks too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mediajobs import process
from tests.toolkit.frames import ffmpeg

MARKER = "MRN-123456"
GPS = "+12.3456-065.4321/"  # ISO 6709, as QuickTime's ©xyz and Apple's location key hold it
NEEDLES = (MARKER, "065.4321")
CONTAINERS = ("mp4", "mov", "mkv", "ts")
SIZE = (320, 240)
FPS = 25
# An x264 stream whose every keyframe carries an SEI user data message, as cameras write their own.
SEI_UUID = "086f3693-b7b3-4f2c-9653-21492feee5b8"
# What ffmpeg's muxers write of their own: allowed in an output, with these values.
OWN_FORMAT_TAGS = {"major_brand", "minor_version", "compatible_brands", "encoder"}
OWN_STREAM_TAGS = {
    "handler_name": {"VideoHandler", "SoundHandler"},
    "vendor_id": {"[0][0][0][0]"},
    "language": {"und"},
}
OWN_PROGRAM_TAGS = {"service_name": {"Service01"}, "service_provider": {"FFmpeg"}}
MEDIA_SUFFIXES = {".mp4", ".m4a", ".mov", ".mkv", ".ts", ".jpg", ".png", ".webp", ".gif"}

_TAGS = {
    "title": f"Patient Jane Doe {MARKER}",
    "comment": f"ward 7, Dr Smith {MARKER}",
    "artist": f"Artist {MARKER}",
    "description": f"Description {MARKER}",
    "copyright": f"Copyright {MARKER}",
    "encoder": f"Camera firmware {MARKER}",
    "location": GPS,
    "creation_time": "2021-03-04T05:06:07Z",
}
_APPLE = {
    "com.apple.quicktime.location.ISO6709": GPS,
    "com.apple.quicktime.make": f"Make {MARKER}",
    "com.apple.quicktime.model": f"Model {MARKER}",
    "com.apple.quicktime.creationdate": "2021-03-04T05:06:07+0100",
}


def tagged_source(path: Path, container: str, *, seconds: int = 4) -> Path:
    """A `container` file (mp4, mov, mkv, ts) of H.264 and AAC (MP3 in mkv) with 1 s GOPs, tagged everywhere
    it can be."""
    if path.exists():
        return path
    work = path.parent / f"{path.stem}-parts"
    work.mkdir(parents=True, exist_ok=True)
    base = work / "base.ts"  # in MPEG-TS, x264 repeats its parameter sets, and so the SEI, at every keyframe
    ffmpeg(
        "-f", "lavfi", "-i", f"testsrc2=s={SIZE[0]}x{SIZE[1]}:r={FPS}:d={seconds}",
        "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
        "-c:v", "libx264", "-preset", "ultrafast", "-g", str(FPS), "-pix_fmt", "yuv420p",
        "-bsf:v", f"h264_metadata=sei_user_data={SEI_UUID}+SEI {MARKER}",
        "-c:a", "aac", "-b:a", "64k", "-t", str(seconds), "-f", "mpegts", base,
    )  # fmt: skip
    chapters = work / "chapters.txt"
    half = seconds * 500
    chapters.write_text(
        ";FFMETADATA1\n"
        + "".join(
            f"[CHAPTER]\nTIMEBASE=1/1000\nSTART={a}\nEND={b}\ntitle=Chapter {n} {MARKER}\n"
            for n, (a, b) in enumerate([(0, half), (half, 2 * half)])
        )
    )
    subtitles = work / "subtitles.srt"
    subtitles.write_text(f"1\n00:00:00,000 --> 00:00:02,000\nJane Doe, {MARKER}\n")
    partial = path.with_name(f"partial-{path.name}")
    ffmpeg(*_container_args(container, base, chapters, subtitles, work), partial)
    partial.rename(path)
    return path


def _container_args(container: str, base: Path, chapters: Path, subtitles: Path, work: Path) -> list[Any]:
    if container == "ts":
        names = [f"service_provider=Provider {MARKER}", f"service_name=Ward {MARKER}"]
        tags = [arg for name in names for arg in ("-metadata", name)]
        tags += ["-metadata:s:a:0", "language=fra"]
        return ["-i", base, "-map", "0", "-c", "copy", *tags, "-f", "mpegts"]
    args: list[Any] = ["-i", base, "-i", chapters, "-i", subtitles, "-map", "0:v", "-map", "0:a", "-map", "2"]
    # MP3 in the Matroska file: browsers' HLS takes AAC only, so its ladder is encoded rather than copied.
    audio = ["-c:a", "libmp3lame", "-b:a", "96k"] if container == "mkv" else ["-c:a", "copy"]
    args += ["-map_metadata", "1", "-map_chapters", "1", "-c:v", "copy", *audio]
    for key, value in _TAGS.items():
        args += ["-metadata", f"{key}={value}"]
    for spec, handler in (("v:0", "Video"), ("a:0", "Sound")):
        args += [f"-metadata:s:{spec}", f"handler_name={handler} of {MARKER}"]
        args += [f"-metadata:s:{spec}", f"title={handler} of {MARKER}"]
        args += [f"-metadata:s:{spec}", "creation_time=2021-03-04T05:06:07Z"]
    args += ["-metadata:s:a:0", "language=fra", "-metadata:s:v:0", "timecode=01:02:03:04"]
    if container == "mkv":
        attachment = work / "notes.txt"
        attachment.write_text(f"notes on Jane Doe {MARKER}\n")
        args += ["-c:s", "srt", "-attach", attachment, "-metadata:s:t", "mimetype=text/plain"]
        return [*args, "-metadata:s:t", f"filename=notes {MARKER}.txt", "-f", "matroska"]
    args += ["-c:s", "mov_text"]
    if container == "mov":
        for key, value in _APPLE.items():
            args += ["-metadata", f"{key}={value}"]
        return [*args, "-movflags", "use_metadata_tags", "-f", "mov"]
    return [*args, "-f", "mp4"]


def probe_all(path: Path) -> dict[str, Any]:
    """Everything ffprobe reads of `path`'s container: format, streams, chapters, programs, every tag."""
    args = ["ffprobe", "-v", "error", "-of", "json", "-show_format", "-show_streams", "-show_chapters"]
    args.append("-show_programs")
    done = process.run([*args, str(path)], capture_stdout=True, network=False)
    result: dict[str, Any] = json.loads(done.stdout or "{}")
    return result


def leaks(path: Path) -> list[str]:
    """What `path` carries of a tagged source (empty: nothing)."""
    found = []
    data = path.read_bytes()
    for needle in NEEDLES:
        if needle.encode() in data:
            found.append(f"{needle!r} in its bytes")
    if path.suffix.lower() not in MEDIA_SUFFIXES:
        return found
    info = probe_all(path)
    text = json.dumps(info)
    found += [f"{needle!r} in what ffprobe reads" for needle in NEEDLES if needle in text]
    for key in (info.get("format") or {}).get("tags") or {}:
        if key not in OWN_FORMAT_TAGS:
            found.append(f"format tag {key}")
    streams = list(info.get("streams") or [])
    for program in info.get("programs") or []:
        streams += program.get("streams") or []
        found += _foreign(program.get("tags") or {}, OWN_PROGRAM_TAGS, "program")
    for stream in streams:
        kind = stream.get("codec_type")
        if kind not in ("video", "audio"):
            found.append(f"a {kind} stream")
        found += _foreign(stream.get("tags") or {}, OWN_STREAM_TAGS, f"{kind} stream")
    if info.get("chapters"):
        found.append(f"{len(info['chapters'])} chapters")
    return found


def _foreign(tags: dict[str, str], own: dict[str, set[str]], where: str) -> list[str]:
    found = []
    for key, value in tags.items():
        if key == "encoder" and value.startswith("Lav"):
            continue  # our own ffmpeg's name
        if value not in own.get(key, set()):
            found.append(f"{where} tag {key}={value!r}")
    return found
