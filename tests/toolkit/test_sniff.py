"""The first bytes of a file tell media (every container ffmpeg may read here) from what a person uploaded by
mistake: each made for real (ffmpeg, zip, gzip) or written as such files start."""

from __future__ import annotations

import gzip
import io
import zipfile
from pathlib import Path

import pytest

from mediajobs import process
from mediajobs.toolkit.sniff import SNIFF_BYTES, sniff

FFMPEG = ["ffmpeg", "-nostdin", "-v", "error", "-y"]
PICTURE = ["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:d=0.4"]
SOUND = ["-f", "lavfi", "-i", "sine=d=0.5"]
# Every container of inputs.MEDIA_FORMATS, as ffmpeg writes it: (name, input, codec and muxer arguments).
MEDIA = [
    ("clip.mp4", PICTURE, ["-c:v", "libx264"]),
    ("clip.mov", PICTURE, ["-c:v", "libx264"]),
    ("clip.3gp", PICTURE, ["-c:v", "libx264", "-s", "176x144"]),
    ("fragmented.mp4", PICTURE, ["-c:v", "libx264", "-movflags", "frag_keyframe+empty_moov"]),
    ("clip.mkv", PICTURE, ["-c:v", "libx264"]),
    ("clip.webm", PICTURE, ["-c:v", "libvpx"]),
    ("clip.ts", PICTURE, ["-c:v", "libx264"]),
    ("clip.m2ts", PICTURE, ["-c:v", "libx264", "-f", "mpegts", "-mpegts_m2ts_mode", "1"]),
    ("clip.mpg", PICTURE, ["-c:v", "mpeg2video"]),
    ("clip.avi", PICTURE, ["-c:v", "mpeg4"]),
    ("clip.flv", PICTURE, ["-c:v", "flv"]),
    ("clip.wmv", PICTURE, ["-c:v", "wmv2"]),
    ("clip.mxf", PICTURE, ["-c:v", "mpeg2video", "-pix_fmt", "yuv422p"]),
    (
        "clip.dv",
        ["-f", "lavfi", "-i", "testsrc=size=720x576:rate=25:d=0.2"],
        ["-c:v", "dvvideo", "-pix_fmt", "yuv420p"],
    ),
    ("clip.ogv", PICTURE, ["-c:v", "libtheora"]),
    ("sound.mp3", SOUND, ["-c:a", "libmp3lame"]),
    ("bare.mp3", SOUND, ["-c:a", "libmp3lame", "-id3v2_version", "0", "-write_xing", "0"]),
    ("sound.mp2", SOUND, ["-c:a", "mp2"]),
    ("sound.aac", SOUND, ["-c:a", "aac"]),
    ("sound.m4a", SOUND, ["-c:a", "aac"]),
    ("sound.ac3", SOUND, ["-c:a", "ac3"]),
    ("sound.eac3", SOUND, ["-c:a", "eac3"]),
    ("sound.flac", SOUND, ["-c:a", "flac"]),
    ("sound.wav", SOUND, ["-c:a", "pcm_s16le"]),
    ("sound.w64", SOUND, ["-c:a", "pcm_s16le"]),
    ("sound.aiff", SOUND, ["-c:a", "pcm_s16be"]),
    ("sound.caf", SOUND, ["-c:a", "pcm_s16le"]),
    ("sound.wv", SOUND, ["-c:a", "wavpack"]),
    ("sound.ogg", SOUND, ["-c:a", "libvorbis"]),
    ("sound.opus", SOUND, ["-c:a", "libopus"]),
]


def first_bytes(path: Path) -> bytes:
    with path.open("rb") as f:
        return f.read(SNIFF_BYTES)


@pytest.mark.parametrize(("name", "source", "args"), MEDIA, ids=[m[0] for m in MEDIA])
def test_every_container_ffmpeg_may_read_here_is_media(
    tmp_path: Path, name: str, source: list[str], args: list[str]
) -> None:
    path = tmp_path / name
    process.run([*FFMPEG, *source, *args, str(path)])

    found = sniff(first_bytes(path))

    assert found.media, (name, found, first_bytes(path)[:16].hex())
    assert found.refusal is None


def test_a_transport_stream_cut_mid_packet_is_still_media(tmp_path: Path) -> None:
    path = tmp_path / "clip.ts"
    process.run([*FFMPEG, *PICTURE, "-c:v", "libx264", str(path)])

    assert sniff(path.read_bytes()[100 : 100 + SNIFF_BYTES]).media


@pytest.mark.parametrize(
    ("name", "what"),
    [
        ("still.png", "this is a PNG image"),
        ("still.jpg", "this is a JPEG image"),
        ("still.gif", "this is a GIF image"),
        ("still.webp", "this is a WebP image"),
        ("still.bmp", "this is a BMP image"),
        ("still.tiff", "this is a TIFF image"),
        ("subtitles.srt", "this is an SRT subtitle file"),
        ("subtitles.vtt", "this is a WebVTT subtitle file"),
        ("playlist.m3u8", "this is an HLS playlist"),
    ],
)
def test_pictures_subtitles_and_playlists_ffmpeg_makes_are_named(
    tmp_path: Path, name: str, what: str
) -> None:
    path = tmp_path / name
    if name.startswith("still"):
        process.run([*FFMPEG, *PICTURE, "-frames:v", "1", str(path)])
    elif name == "playlist.m3u8":
        process.run([*FFMPEG, *PICTURE, "-c:v", "libx264", "-f", "hls", str(path)])
    else:
        subtitles = tmp_path / "in.srt"
        subtitles.write_text("1\n00:00:00,000 --> 00:00:01,000\nHello\n\n")
        process.run([*FFMPEG, "-i", str(subtitles), str(path)])

    refusal = sniff(first_bytes(path)).refusal

    assert refusal is not None and refusal.startswith(what), refusal
    assert refusal.endswith("upload a video or audio file (MP4, MOV, MKV, WebM, MPEG-TS, MP3, M4A, WAV, ...)")


def _zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("clip.mp4", b"\x00" * 100)
    return out.getvalue()


# Named by what they are, not by their bytes: the zip and gzip cases carry the time they were made, and
# pytest-xdist needs every process to collect the same test ids.
NOT_MEDIA = [
    (b"These are meeting notes, not a video.\n" * 200, "a text file"),
    ("Notizen über das Treffen – nicht ein Video.\n".encode() * 100, "a text file"),
    ("Notes en Windows-1252: été, déjà\r\n".encode("cp1252") * 100, "a text file"),
    ("\ufeffNotes in UTF-16\r\n".encode("utf-16-le") * 50, "a text file"),
    (b"<!DOCTYPE html><html><body>Not a video</body></html>", "a web page (HTML)"),
    (b'  {"error": "not found"}', "a JSON file"),
    (b'<?xml version="1.0"?><rss/>', "an XML file"),
    (b'<svg xmlns="http://www.w3.org/2000/svg"/>', "an SVG image"),
    (b"ffconcat version 1.0\nfile /etc/passwd\n", "an ffconcat script"),
    (b'<?xml version="1.0"?>\n<MPD xmlns="urn:mpeg:dash:schema:mpd:2011"/>', "an XML file"),
    (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "a PDF document"),
    (_zip(), "a ZIP archive (or an Office document)"),
    (gzip.compress(b"x" * 1000, mtime=0), "a gzip archive"),
    (b"\x7fELF\x02\x01\x01" + bytes(100), "a program (ELF)"),
    (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "a HEIC image"),
    (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf", "an AVIF image"),
    (bytes(range(256)) * 16, "not a video or audio file mediajobs recognises"),
    (b"\x13\x37" * 2048, "not a video or audio file mediajobs recognises"),
    (b"", "an empty file"),
]


@pytest.mark.parametrize(
    ("data", "what"), NOT_MEDIA, ids=[f"{i}-{what}" for i, (_, what) in enumerate(NOT_MEDIA)]
)
def test_what_is_not_media_is_named_in_plain_words(data: bytes, what: str) -> None:
    found = sniff(data[:SNIFF_BYTES])

    assert not found.media, found
    assert found.refusal is not None and found.refusal.startswith(f"this is {what}"), found
