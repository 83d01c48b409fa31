"""The ladder on one segment grid: fast start for standard input, chunks that join without seams."""

from __future__ import annotations

import itertools
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from mediajobs.toolkit import packets
from mediajobs.toolkit.hls import grid as grids
from mediajobs.toolkit.hls import ladder, renditions
from mediajobs.toolkit.probe import probe
from tests.clips import MakeClip
from tests.toolkit import hlscheck
from tests.toolkit.ladders import make_ladder
from tests.toolkit.test_hls import SOURCE

STANDARD = replace(SOURCE, video_profile="High", pix_fmt="yuv420p", field_order="progressive", video_level=40)


def index_json(packet_list: list[dict[str, object]], time_base: str = "1/1000") -> dict[str, object]:
    """What ffprobe prints for a video stream holding `packet_list`."""
    stream = {"codec_name": "h264", "width": 1920, "height": 1080, "time_base": time_base}
    return {"streams": [stream], "packets": packet_list, "format": {"start_time": "0.000000"}}


def index_of(keyframes: list[float], end: float, fps: float = 25.0) -> packets.VideoIndex:
    """Frames every 1/fps s up to `end`, keyframes at `keyframes` (times in ms ticks)."""
    pts = [round(i * 1000 / fps) for i in range(round(end * fps))]
    ends = [*pts[1:], round(end * 1000)]
    keys = {round(k * 1000) for k in keyframes}
    found = [
        {"pts": t, "dts": t, "duration": e - t, "flags": "K_" if t in keys else "__"}
        for t, e in zip(pts, ends, strict=True)
    ]
    return packets.parse(index_json(found))


def encode_source(out: Path, *args: str, duration: float = 12.0, size: str = "854x480") -> Path:
    """A lavfi clip encoded with `args` (codec options), with a 440 Hz tone."""
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25"]
    cmd += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", str(duration), *args, str(out)]
    subprocess.run(cmd, check=True)
    return out


# --- planning ---


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"video_codec": "hevc"}, "the video is hevc, not H.264"),
        ({"pix_fmt": "yuv420p10le"}, "pixel format yuv420p10le, not 8-bit 4:2:0"),
        ({"pix_fmt": "yuv422p"}, "pixel format yuv422p, not 8-bit 4:2:0"),
        ({"width": 3840, "height": 2160}, "3840x2160 is larger than 1080p"),
        ({"rotation": 90}, "the picture is rotated by its metadata"),
        ({"field_order": "tt"}, "the video is interlaced"),
        ({"audio_codec": "opus"}, "the audio is opus, not AAC"),
        ({"video_profile": "High 10"}, "H.264 profile High 10"),
    ],
)
def test_a_source_browsers_cannot_play_as_it_is_is_encoded_and_says_why(change: dict, reason: str) -> None:
    keys = [0.0, 2.0, 4.0, 6.0, 8.0]
    found = ladder.plan(replace(STANDARD, **change), index_of(keys, 10.0))

    assert found.fast_start == reason
    assert not any(r.copy for r in found.renditions)
    assert found.grid.starts == (0.0, 4.0, 8.0)  # the fixed 4 s grid


def test_index_problems_make_a_copy_unsafe() -> None:
    long_gop = index_of([0.0, 12.0], 20.0)
    found = [(0, -80, "K_"), (40, -40, "_D"), (80, 0, "__"), (80, 40, "__")]
    shared = [{"pts": p, "dts": d, "duration": 40, "flags": f} for p, d, f in found]
    late = [{"pts": 0, "dts": 0, "duration": 40, "flags": "__"}, {"pts": 40, "dts": 40, "flags": "K_"}]

    assert ladder.plan(STANDARD, long_gop).fast_start == "keyframes up to 12.0 s apart (at most 10)"
    parsed = packets.parse(index_json(shared))
    assert parsed.problems == ["two frames share a timestamp", "1 packets an edit list discards"]
    assert packets.parse(index_json(late)).problems[0] == "the video does not start with a keyframe"


def test_standard_1080p_keeps_its_own_stream_on_top_and_encodes_the_rungs_below() -> None:
    found = ladder.plan(STANDARD, index_of([0.0, 2.0, 4.0, 6.0, 8.0], 10.0))

    assert found.fast_start is None
    assert [(r.name, r.copy) for r in found.renditions] == [
        ("1080p", True), ("720p", False), ("480p", False), ("360p", False)
    ]  # fmt: skip
    # Every rung gets a keyframe wherever the source has one, so all cut and switch at the same pictures.
    assert found.keyframes == (0.0, 2.0, 4.0, 6.0, 8.0)
    assert found.codecs["1080p"] == "avc1.640028,mp4a.40.2"
    assert found.audio == "copy"


def test_keyframe_grid_takes_the_keyframe_nearest_four_seconds_and_folds_a_tiny_tail() -> None:
    every_3s = index_of([0.0, 3.0, 6.0, 9.0, 12.0], 12.4)
    every_2s = index_of([0.0, 2.0, 4.0, 6.0, 8.0, 10.0], 10.5)

    assert grids.on_keyframes(every_3s).starts == (0.0, 3.0, 6.0, 9.0)  # 12.0-12.4 joins the last
    assert grids.on_keyframes(every_2s).starts == (0.0, 4.0, 8.0)
    assert grids.on_keyframes(every_2s).durations() == [4.0, 4.0, 2.5]


def test_chunks_are_whole_segments_as_equal_as_they_can_be_the_first_short_when_nothing_plays_yet() -> None:
    grid = grids.Grid(tuple(float(4 * i) for i in range(45)), 180.0)  # 3 minutes of 4 s segments

    plain = grids.chunks(grid, 30.0)
    quick = grids.chunks(grid, 30.0, short_first=True)

    for spans in (plain, quick):
        assert spans[0][0] == 0 and spans[-1][1] == 45
        assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    assert quick[0] == (0, 1)
    # Six chunks of 7 or 8 segments: two workers end within a segment of each other (chunks of 30 s and the
    # 20 s left over left one of them idle for 12 s of 90).
    assert len(plain) == 6 and {b - a for a, b in plain} == {7, 8}
    assert len(quick) == 7 and {b - a for a, b in quick[1:]} == {7, 8}
    # A source just over the threshold makes two; one under half of it, one.
    assert grids.chunks(grids.Grid(tuple(float(4 * i) for i in range(16)), 63.0), 30.0) == [(0, 8), (8, 16)]
    assert grids.chunks(grids.Grid((0.0, 4.0, 8.0), 12.0), 30.0) == [(0, 3)]


# --- making it: the checks of a joined ladder ---


def check_ladder(out: Path, src: Path, tmp: Path) -> dict[str, hlscheck.Rendition]:
    """Issue 10's checks: frames, keyframes, EXTINF, decode errors, monotonic timestamps, no audio gap."""
    found = hlscheck.renditions(out)
    video = {name: r for name, r in found.items() if name != "audio"}
    expected_frames = hlscheck.frame_count(src)
    keyframes = {}
    for name, r in video.items():
        joined = hlscheck.joined(r, tmp)
        assert hlscheck.frame_count(joined) == expected_frames, name
        assert hlscheck.decode_errors(joined) == "", name
        assert hlscheck.monotonic(joined, "v:0"), name
        keyframes[name] = hlscheck.keyframe_times(joined)
    assert len({tuple(k) for k in keyframes.values()}) == 1, keyframes
    assert len({tuple(r.durations) for r in found.values()}) == 1  # EXTINF equal in every playlist
    if "audio" in found:
        joined = hlscheck.joined(found["audio"], tmp)
        assert hlscheck.decode_errors(joined) == ""
        assert hlscheck.monotonic(joined, "a:0")
        assert hlscheck.largest_audio_gap_s(joined) < 0.002  # under a tenth of one AAC frame
    return found


def test_standard_source_copied_on_top_and_chunked_rungs_join_without_seams(tmp_path: Path) -> None:
    x264 = ["-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-bf", "2"]
    src = encode_source(tmp_path / "std.mp4", *x264, "-c:a", "aac")
    info = probe(src)

    lad = make_ladder(src, tmp_path / "out", info, chunk_s=4.0).ladder

    assert [(r.name, r.copy) for r in lad.renditions] == [("480p", True), ("360p", False)]
    found = check_ladder(tmp_path / "out", src, tmp_path)
    assert set(found) == {"480p", "360p", "audio"}
    # The copy is the source's stream bit for bit: the same packets.
    copied = hlscheck.joined(found["480p"], tmp_path)
    assert hlscheck.frame_count(copied) == hlscheck.frame_count(src)


def test_hevc_source_encoded_in_chunks_joins_like_one_encode(tmp_path: Path) -> None:
    src = encode_source(tmp_path / "hevc.mkv", "-c:v", "libx265", "-preset", "ultrafast",
                        "-x265-params", "log-level=error", "-c:a", "libopus")  # fmt: skip
    info = probe(src)

    lad = make_ladder(src, tmp_path / "out", info, chunk_s=4.0).ladder

    assert lad.fast_start == "the video is hevc, not H.264"
    assert lad.audio == "encode"
    check_ladder(tmp_path / "out", src, tmp_path)


def test_open_gop_source_is_not_copied_because_its_segments_would_not_start_clean(tmp_path: Path) -> None:
    src = encode_source(tmp_path / "open.mp4", "-c:v", "libx264", "-preset", "ultrafast", "-g", "50",
                        "-bf", "3", "-x264-params", "open-gop=1:b-pyramid=normal", "-c:a", "aac")  # fmt: skip
    info = probe(src)
    lad = ladder.plan(info, packets.scan(src, duration_s=info.duration, max_pixels=info.max_pixels))
    assert lad.fast_start is None  # it looks standard...

    renditions.remux(src, tmp_path / "remux", lad, info)
    problem = renditions.copy_is_exact(tmp_path / "remux", lad)

    assert problem is not None and "does not start with a decodable keyframe" in problem  # ...but is not
    made = make_ladder(src, tmp_path / "out", info)
    assert made.ladder.fast_start == problem
    check_ladder(tmp_path / "out", src, tmp_path)


def test_edit_list_source_is_encoded_not_copied(make_clip: MakeClip, tmp_path: Path) -> None:
    clip = make_clip(duration=6.0, width=640, height=360)
    cut = tmp_path / "cut.mp4"
    # A stream copy that starts between keyframes writes an edit list hiding the pictures before the start.
    copy = ["ffmpeg", "-v", "error", "-ss", "1.3", "-i", str(clip), "-c", "copy", str(cut)]
    subprocess.run(copy, check=True)
    info = probe(cut)

    made = make_ladder(cut, tmp_path / "out", info)

    assert made.ladder.fast_start is not None and "edit list" in made.ladder.fast_start
    check_ladder(tmp_path / "out", cut, tmp_path)
