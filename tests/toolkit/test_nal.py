"""NAL-level facts read without decoding: the pictures SPS declare, fresh starts, the CRA-to-BLA splice."""

from __future__ import annotations

from pathlib import Path

import pytest

from mediajobs import process
from mediajobs.toolkit import nal
from mediajobs.toolkit.sps import Picture

FFMPEG = ["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-y"]


def encode(out: Path, size: str, *codec: str, seconds: float = 1.0) -> Path:
    source = f"testsrc2=size={size}:rate=25:duration={seconds:g}"
    process.run([*FFMPEG, "-f", "lavfi", "-i", source, *codec, str(out)])
    return out


def declared(src: Path, codec: str, tmp_path: Path) -> set[Picture] | None:
    raw = tmp_path / "sps.raw"
    process.run([*FFMPEG, "-i", str(src), *nal.parameter_set_output(codec, raw)])
    return nal.picture_formats(raw, codec)


X264 = ["-c:v", "libx264", "-preset", "ultrafast"]
X265 = ["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error"]


@pytest.mark.parametrize(
    ("size", "codec", "options", "picture"),
    [
        # 180 lines are 12 macroblock rows cropped by 12: the crop must be read.
        ("320x180", "h264", [*X264, "-pix_fmt", "yuv420p"], Picture(320, 180, 1, 8, 8)),
        ("854x480", "h264", [*X264, "-pix_fmt", "yuv420p10le"], Picture(854, 480, 1, 10, 10)),
        ("320x240", "h264", [*X264, "-pix_fmt", "yuv444p"], Picture(320, 240, 3, 8, 8)),
        ("320x180", "hevc", [*X265, "-pix_fmt", "yuv420p"], Picture(320, 180, 1, 8, 8)),
        ("854x480", "hevc", [*X265, "-pix_fmt", "yuv420p10le"], Picture(854, 480, 1, 10, 10)),
    ],
)
def test_the_sps_declare_the_pictures_ffmpeg_decodes(
    tmp_path: Path, size: str, codec: str, options: list[str], picture: Picture
) -> None:
    for container in ("mp4", "ts"):  # parameter sets out of band (avcC/hvcC) and in band
        src = encode(tmp_path / f"src.{container}", size, *options)
        assert declared(src, codec, tmp_path) == {picture}, container


def test_a_garbled_sps_is_unreadable_not_guessed(tmp_path: Path) -> None:
    raw = tmp_path / "sps.raw"
    raw.write_bytes(b"\x00\x00\x00\x01\x67\x64\x00")  # an SPS cut off after its profile

    assert nal.picture_formats(raw, "h264") is None


def test_splice_at_cra_makes_a_piece_start_afresh(tmp_path: Path) -> None:
    # x265 open GOPs: every keyframe after the first is a CRA with leading (RASL) pictures.
    params = "log-level=error:keyint=25:min-keyint=25:open-gop=1"
    src = encode(tmp_path / "open.mp4", "320x180", "-c:v", "libx265", "-x265-params", params, seconds=3)
    piece = tmp_path / "piece.ts"
    # A stream copy from the second keyframe (1 s), as a smart render's copy pass makes one.
    copy = ["-map", "0:v", "-c", "copy", "-f", "mpegts", str(piece)]
    process.run([*FFMPEG, "-ss", "1", "-i", str(src), *copy])

    def keyframes() -> nal.Keyframes:
        directory = tmp_path / "units"
        directory.mkdir(exist_ok=True)
        process.run([*FFMPEG, "-copyts", "-i", str(piece), *nal.keyframe_outputs("hevc", directory)])
        return nal.read_keyframes(directory, "hevc")

    before = keyframes()
    first = min(before.fresh | before.cra)
    assert first in before.cra and first not in before.fresh

    assert nal.splice_at_cra(piece)

    after = keyframes()
    assert first in after.fresh and first not in after.cra
    assert after.cra == before.cra - {first}  # only the first picture changed
    assert not nal.splice_at_cra(piece)  # nothing left to mark
