"""`mediajobs media mask|remove-frames|clip|analyze|reprocess|captions|download|rename`, against a real stack,
and the argument syntax of regions, ranges and crops."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import click
import httpx
import pytest

from mediajobs.cli.args import parse_audio_range, parse_crop, parse_range, parse_region, parse_time
from mediajobs.testing.stacks import Stack
from tests.cli.test_client import as_json, mediajobs, sqlite_stack
from tests.clips import MakeClip
from tests.conftest import MakeStack


@pytest.mark.parametrize(
    ("text", "region"),
    [
        ("10,20,320,180", {"x": 10, "y": 20, "w": 320, "h": 180, "start": 0.0, "end": None, "style": "blur"}),
        (
            "10,20,320,180,2,5:black",
            {"x": 10, "y": 20, "w": 320, "h": 180, "start": 2.0, "end": 5.0, "style": "black"},
        ),
        (
            "0,0,64,64,1:05,end:Pixelate",
            {"x": 0, "y": 0, "w": 64, "h": 64, "start": 65.0, "end": None, "style": "pixelate"},
        ),
        (" 1, 2, 3, 4, 0.5 ", {"x": 1, "y": 2, "w": 3, "h": 4, "start": 0.5, "end": None, "style": "blur"}),
    ],
)
def test_a_region_is_x_y_w_h_then_times_then_a_style(text: str, region: dict[str, Any]) -> None:
    assert parse_region(text) == region


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("10,20,320", "is not a region; write x,y,w,h[,start[,end]][:style]"),
        ("10,20,320,180,1,2,3", "is not a region"),
        ("10,20,-5,180", "w must be a whole number of pixels, not '-5'"),
        ("10,20,1.5,180", "w must be a whole number of pixels"),
        ("10,20,0,180", "at least 1 pixel"),
        ("10,20,320,180:sparkle", "unknown style 'sparkle'; one of blur, black, pixelate"),
        ("10,20,320,180,5,2", "the end must come after the start"),
        ("10,20,320,180,soon", "start 'soon' is not a time"),
        ("10,20,320,180,1:75", "minutes and seconds go up to 59"),
        ("10,20,320,180,nan", "a time is a number of seconds from 0"),
        ("10,20,320,180,-1", "a time is a number of seconds from 0"),
    ],
)
def test_a_bad_region_says_what_is_wrong_and_how_to_write_it(text: str, says: str) -> None:
    with pytest.raises(click.BadParameter, match=None) as refused:
        parse_region(text)
    assert says in refused.value.message, refused.value.message


def test_ranges_crops_and_times_read_as_people_write_them() -> None:
    assert parse_range("1.5-3.0") == {"start": 1.5, "end": 3.0}
    assert parse_range("1:05 – 1:10.5") == {"start": 65.0, "end": 70.5}
    assert parse_range("0..2") == {"start": 0.0, "end": 2.0}
    assert parse_time("1:02:03") == 3723.0
    assert parse_crop("9:16") == {"aspect": "9:16", "x": 0.5}
    assert parse_crop("4:5@0.25") == {"aspect": "4:5", "x": 0.25}
    for bad, says in [
        ("3-1", "the end (1) must come after the start (3)"),
        ("3", "is not a range; write START-END"),
        ("a-b", "start 'a' is not a time"),
    ]:
        with pytest.raises(click.BadParameter) as refused:
            parse_range(bad)
        assert says in refused.value.message
    for bad, says in [
        ("3:2", "is not a crop"),
        ("9:16@2", "from 0 (left edge) to 1"),
        ("9:16@x", "X must be"),
    ]:
        with pytest.raises(click.BadParameter) as refused:
            parse_crop(bad)
        assert says in refused.value.message


def test_a_range_of_the_sound_is_start_end_then_a_style() -> None:
    assert parse_audio_range("1.5-3") == {"start": 1.5, "end": 3.0, "style": "mute"}
    assert parse_audio_range("1:05-1:10.5:Bleep") == {"start": 65.0, "end": 70.5, "style": "bleep"}
    for bad, says in [
        ("1-2:beep", "unknown style 'beep'; one of mute, bleep"),
        ("1:05", "is not a range of the sound; write START-END[:style]"),
        ("3-1:bleep", "the end (1) must come after the start (3)"),
        ("1-nan", "a time is a number of seconds from 0"),
    ]:
        with pytest.raises(click.BadParameter) as refused:
            parse_audio_range(bad)
        assert says in refused.value.message, refused.value.message


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ((), "give --region, --audio-range, or --audio mute|remove"),
        (("--audio", "keep"), "this mask would change nothing"),
        (("--audio", "remove", "--audio-range", "1-2"), "leave it out with --audio remove"),
        (("--audio-range", "2-1"), "Invalid value for '--audio-range': '2-1': the end (1) must come after"),
        (("--audio", "louder"), "'louder' is not one of 'keep', 'mute', 'remove'"),
    ],
)
def test_a_mask_that_changes_nothing_or_a_bad_sound_option_exits_2_before_calling_the_api(
    options: tuple[str, ...], says: str
) -> None:
    env = {"MEDIAJOBS_API_URL": "http://127.0.0.1:9"}  # nothing listens there: the API is never asked
    result = mediajobs(env, "media", "mask", "some-id", *options)
    assert result.returncode == 2 and says in result.stderr, result.stderr


def test_a_bad_region_on_the_command_line_exits_2_before_calling_the_api() -> None:
    env = {"MEDIAJOBS_API_URL": "http://127.0.0.1:9"}  # nothing listens there: the API is never asked
    result = mediajobs(env, "media", "mask", "some-id", "--region", "10,20,320")
    assert result.returncode == 2
    assert "Invalid value for '--region': '10,20,320' is not a region; write x,y,w,h" in result.stderr


@sqlite_stack
def test_submit_of_a_media_kind_names_the_command_to_use(stack: Stack) -> None:
    result = mediajobs(stack.env, "submit", "media.mask", "-p", "regions=[]")
    assert result.returncode == 2
    assert "use `mediajobs media mask ID --region x,y,w,h[,start[,end]][:style]`" in result.stderr
    internal = mediajobs(stack.env, "submit", "media.transcode_chunk")
    assert internal.returncode == 2 and "run by mediajobs itself" in internal.stderr


def ffprobe(path: Path) -> dict[str, Any]:
    done = subprocess.run(
        ["ffprobe", "-v", "error", "-of", "json", "-show_format", "-show_streams", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)  # type: ignore[no-any-return]


@pytest.fixture
def ready(stack: Stack, make_clip: MakeClip) -> dict[str, Any]:
    """A ready 4 s 320x240 asset with sound, titled "holiday"."""
    clip = make_clip(duration=4.0, name="holiday.mp4")
    media = as_json(mediajobs(stack.env, "media", "upload", str(clip), "--wait", "--json", timeout_s=180))
    assert media["state"] == "ready" and media["title"] == "holiday", media
    return media


@sqlite_stack
def test_mask_cut_and_clip_make_new_assets_and_wait_for_them(stack: Stack, ready: dict[str, Any]) -> None:
    region = ["--region", "0,0,64,64,1,2:black", "--region", "100,100,50,50"]
    masked = as_json(
        mediajobs(stack.env, "media", "mask", ready["id"], *region, "--wait", "--json", timeout_s=180)
    )
    cut = as_json(
        mediajobs(
            stack.env,
            "media",
            "remove-frames",
            ready["id"],
            "--range",
            "0.5-1",
            "--range",
            "3-3.5",
            "--wait",
            "--json",
            timeout_s=180,
        )
    )
    clipped = as_json(
        mediajobs(
            stack.env,
            "media",
            "clip",
            ready["id"],
            "--range",
            "1-3",
            "--crop",
            "9:16@0.3",
            "--wait",
            "--json",
            timeout_s=180,
        )
    )

    for made in (masked, cut, clipped):
        assert made["state"] == "ready" and made["parent_id"] == ready["id"] and made["hls"], made
    assert masked["title"] == "holiday — masked 0:01–0:02, 0:00–0:04"
    assert masked["source"]["regions"][0] == {
        "x": 0,
        "y": 0,
        "w": 64,
        "h": 64,
        "start": 1.0,
        "end": 2.0,
        "style": "black",
    }
    assert cut["title"] == "holiday — cut 0:00.5–0:01, 0:03–0:03.5"
    assert abs(cut["probe"]["duration"] - 3.0) < 0.1, cut["probe"]
    assert clipped["title"] == "holiday — clip 0:01–0:03 (9:16)"
    assert clipped["probe"]["height"] == 240 and clipped["probe"]["width"] < 240, clipped["probe"]

    shown = mediajobs(stack.env, "media", "show", masked["id"])
    assert "made by" in shown.stdout and "0,0 64x64 from 0:01 to 0:02, black" in shown.stdout, shown.stdout


@sqlite_stack
def test_mask_bleeps_mutes_or_removes_the_sound(stack: Stack, ready: dict[str, Any]) -> None:
    sound = ["--audio-range", "0.5-1:bleep", "--audio-range", "2-3"]
    bleeped = as_json(
        mediajobs(stack.env, "media", "mask", ready["id"], *sound, "--wait", "--json", timeout_s=180)
    )
    assert (
        bleeped["state"] == "ready" and bleeped["title"] == "holiday — muted 0:02–0:03, bleeped 0:00.5–0:01"
    )
    assert bleeped["source"]["audio_ranges"] == [
        {"start": 0.5, "end": 1.0, "style": "bleep"},
        {"start": 2.0, "end": 3.0, "style": "mute"},
    ]
    shown = mediajobs(stack.env, "media", "show", bleeped["id"]).stdout
    assert "mask: sound bleeped from 0:00.5 to 0:01; sound muted from 0:02 to 0:03" in shown, shown
    region = ["--region", "0,0,64,64", "--audio", "remove"]
    removed = as_json(
        mediajobs(stack.env, "media", "mask", ready["id"], *region, "--wait", "--json", timeout_s=180)
    )
    assert removed["state"] == "ready" and removed["title"] == "holiday — masked 0:00–0:04, without sound"
    assert removed["probe"]["audio_codec"] is None and removed["probe"]["width"] == 320, removed["probe"]
    refused = mediajobs(stack.env, "media", "mask", ready["id"], "--audio-range", "3-9")
    assert refused.returncode == 1 and "audio_ranges" in refused.stderr, refused.stderr


@sqlite_stack
def test_an_operation_the_api_refuses_exits_1_naming_the_field(stack: Stack, ready: dict[str, Any]) -> None:
    result = mediajobs(stack.env, "media", "remove-frames", ready["id"], "--range", "10-12")
    assert result.returncode == 1
    assert "ranges" in result.stderr and "error:" in result.stderr, result.stderr


@sqlite_stack
def test_analyze_and_reprocess_wait_and_report(stack: Stack, ready: dict[str, Any]) -> None:
    analyzed = as_json(
        mediajobs(stack.env, "media", "analyze", ready["id"], "--wait", "--json", timeout_s=180)
    )
    assert analyzed["state"] == "succeeded"
    assert set(analyzed["result"]) >= {"probe", "scenes", "black", "silence", "freeze", "loudness"}

    rebuilt = mediajobs(stack.env, "media", "reprocess", ready["id"], "--pipeline", "hls,thumbnail", "--wait")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert f"media {ready['id']} ready" in rebuilt.stdout and "hls master: http" in rebuilt.stdout
    assert "media.process" in rebuilt.stderr and "100.0%" in rebuilt.stderr


@sqlite_stack
def test_download_writes_each_type_with_a_progress_bar(
    stack: Stack, ready: dict[str, Any], tmp_path: Path
) -> None:
    mp4 = tmp_path / "out.mp4"
    result = mediajobs(stack.env, "media", "download", ready["id"], "-o", str(mp4), timeout_s=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(mp4)
    assert "download out.mp4" in result.stderr and "100.0%" in result.stderr, result.stderr
    streams = {s["codec_type"] for s in ffprobe(mp4)["streams"]}
    assert streams == {"video", "audio"}
    assert not list(tmp_path.glob("*.part"))

    # Without -o: the name the API gives, in the working directory (the stack's).
    audio = mediajobs(stack.env, "media", "download", ready["id"], "--type", "audio", timeout_s=120)
    assert audio.returncode == 0, audio.stderr
    named = Path(stack.env["MEDIAJOBS_DATA_DIR"]).parent / audio.stdout.strip()
    assert named.name == "holiday.m4a" and {s["codec_type"] for s in ffprobe(named)["streams"]} == {"audio"}
    again = mediajobs(stack.env, "media", "download", ready["id"], "--type", "audio", timeout_s=120)
    assert again.returncode == 1 and "holiday.m4a exists; pass --force" in again.stderr
    named.unlink()

    original = tmp_path / "original.mp4"
    got = mediajobs(stack.env, "media", "download", ready["id"], "--type", "original", "-o", str(original))
    assert got.returncode == 0, got.stderr
    as_uploaded = next(d for d in ready["downloads"] if d["type"] == "original")
    assert original.read_bytes() == httpx.get(as_uploaded["url"], timeout=30).content

    lower = tmp_path / "low.mp4"
    made = mediajobs(
        stack.env, "media", "download", ready["id"], "--height", "240", "-o", str(lower), timeout_s=180
    )
    assert made.returncode == 0, made.stderr
    assert ffprobe(lower)["streams"][0]["height"] == 240
    missing = mediajobs(stack.env, "media", "download", ready["id"], "--height", "1080")
    assert missing.returncode == 1 and "height" in missing.stderr, missing.stderr


@sqlite_stack
def test_rename_search_captions_and_titles_in_job_lists(
    stack: Stack, ready: dict[str, Any], tmp_path: Path
) -> None:
    renamed = mediajobs(stack.env, "media", "rename", ready["id"], "Board meeting 100%")
    assert renamed.returncode == 0 and "'Board meeting 100%'" in renamed.stdout
    found = mediajobs(stack.env, "media", "ls", "-q", "MEETING 100%")
    lines = found.stdout.splitlines()
    assert lines[0].split()[:3] == ["ID", "STATE", "TITLE"]
    assert [line.split()[0] for line in lines[1:]] == [ready["id"]]
    assert mediajobs(stack.env, "media", "ls", "-q", "100%%").stdout.splitlines()[1:] == []

    jobs = mediajobs(stack.env, "jobs", "ls", "--media-id", ready["id"])
    assert jobs.stdout.splitlines()[0].split()[-1] == "MEDIA"
    assert all(line.endswith("Board meeting 100%") for line in jobs.stdout.splitlines()[1:]), jobs.stdout

    subtitles = tmp_path / "talk.srt"
    subtitles.write_text("1\n00:00:00,500 --> 00:00:02,000\nHello\n")
    added = as_json(
        mediajobs(
            stack.env, "media", "captions", "add", ready["id"], str(subtitles), "--language", "en", "--json"
        )
    )
    assert added["cues"] == 1 and added["language"] == "en"
    listed = mediajobs(stack.env, "media", "captions", "ls", ready["id"])
    assert added["id"] in listed.stdout
    removed = mediajobs(stack.env, "media", "captions", "rm", ready["id"], added["id"])
    assert removed.returncode == 0
    assert added["id"] not in mediajobs(stack.env, "media", "captions", "ls", ready["id"]).stdout


def test_an_upload_over_the_limit_is_refused_before_any_byte_and_says_so_in_mib(
    make_stack: MakeStack, tmp_path: Path
) -> None:
    stack = make_stack(max_upload_bytes=str(1024 * 1024), workers=0)
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\x1a\x45\xdf\xa3" + bytes(3 * 1024 * 1024 - 4))

    result = mediajobs(stack.env, "media", "upload", str(big))

    assert result.returncode == 1
    assert "the upload of 3 MiB is over the limit of 1 MiB (1,048,576 bytes" in result.stderr, result.stderr
    assert "100.0%" not in result.stderr and "3 MiB/3 MiB" not in result.stderr, result.stderr


def test_a_file_that_is_not_media_is_refused_after_its_first_bytes(
    make_stack: MakeStack, tmp_path: Path
) -> None:
    stack = make_stack(workers=0)
    notes = tmp_path / "notes.mp4"
    notes.write_bytes(b"These are meeting notes, not a video.\n" * 500_000)  # 19 MB of text

    result = mediajobs(stack.env, "media", "upload", str(notes))

    assert result.returncode == 1
    assert "error: this is a text file; upload a video or audio file" in result.stderr, result.stderr
    assert "100.0%" not in result.stderr, result.stderr
    assert httpx.get(f"{stack.api_url}/api/v1/media").json()["items"] == []
