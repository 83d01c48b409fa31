"""Caption files as cues: SRT and WebVTT, encodings, only WebVTT's markup kept, hostile files refused."""

from __future__ import annotations

import time

import pytest

from mediajobs.toolkit import subtitles
from mediajobs.toolkit.subtitles import CaptionError, Cue

SRT = """1
00:00:01,000 --> 00:00:02,500
Hello <i>there</i>

2
00:00:03,000 --> 00:00:04,000 X1:100 X2:200
Second line
goes on
"""


def _refused(data: bytes, *, duration_s: float | None = None) -> str:
    with pytest.raises(CaptionError) as caught:
        subtitles.read(data, duration_s=duration_s)
    return str(caught.value)


def test_srt_becomes_webvtt_cues_with_their_times_and_text() -> None:
    cues = subtitles.read(SRT.encode())
    assert cues == [Cue(1000, 2500, "Hello <i>there</i>"), Cue(3000, 4000, "Second line\ngoes on")]
    assert subtitles.to_webvtt(cues, header=["X-TIMESTAMP-MAP=MPEGTS:900000,LOCAL:00:00:00.000"]) == (
        "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:900000,LOCAL:00:00:00.000\n\n"
        "00:00:01.000 --> 00:00:02.500\nHello <i>there</i>\n\n"
        "00:00:03.000 --> 00:00:04.000\nSecond line\ngoes on\n"
    )


def test_webvtt_keeps_its_cue_markup_and_positioning_and_drops_style_region_and_note_blocks() -> None:
    vtt = (
        "WEBVTT - a title\nKind: captions\n\n"
        "STYLE\n::cue { background-image: url(https://tracker.example/x.png) }\n\n"
        "REGION\nid:fred\n\nNOTE written by hand\n\n"
        "intro\n01:02.500 --> 01:04.000 align:start position:10%,line-left line:-2 region:fred size:50%\n"
        "<v.loud Esme Jones>It's <c.yellow.bg>here</c> <00:01:03.000><ruby>漢<rt>kan</rt></ruby>"
        " &amp; <lang en-GB>colour</lang> <b><u>now</u></b>\n"
    )
    [cue] = subtitles.read(vtt.encode())
    assert (cue.start_ms, cue.end_ms) == (62_500, 64_000)
    assert cue.settings == "align:start position:10%,line-left line:-2 size:50%"
    assert cue.text == (
        "<v.loud Esme Jones>It's <c.yellow.bg>here</c> <00:01:03.000><ruby>漢<rt>kan</rt></ruby>"
        " &amp; <lang en-GB>colour</lang> <b><u>now</u></b></v>"
    )
    assert "STYLE" not in subtitles.to_webvtt([cue]) and "url(" not in subtitles.to_webvtt([cue])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<script>alert(1)</script>", "alert(1)"),
        ('<img src=x onerror="alert(1)">hi', "hi"),
        ("<iframe srcdoc='<b>x</b>'>", "&lt;iframe srcdoc='<b>x</b>'&gt;"),
        ('<font color="#ff0000">red</font>', "red"),
        ("{\\an8}on top", "on top"),
        ("a < b && c > d", "a &lt; b &amp;&amp; c &gt; d"),
        ("&lt;script&gt; stays text", "&lt;script&gt; stays text"),
        ("unclosed <b>bold", "unclosed <b>bold</b>"),
        ("stray </i> end", "stray  end"),
        ("<b><i>crossed</b></i>", "<b><i>crossed</i></b>"),
        ("<v Bob <script>>x", "&lt;v Bob &gt;x"),
        ("<c.x onclick=alert(1)>y</c>", "<c.x>y</c>"),
        ("x <3 you", "x &lt;3 you"),
        ("<b>" * 40 + "deep", "<b>" * subtitles.MAX_DEPTH + "deep" + "</b>" * subtitles.MAX_DEPTH),
        ("bell\x07 and escape\x1b[31m", "bell and escape[31m"),
        ("<", "&lt;"),
    ],
)
def test_cue_text_keeps_only_webvtt_tags_and_escapes_everything_else(text: str, expected: str) -> None:
    assert subtitles.sanitize(text) == expected


@pytest.mark.parametrize(
    ("data", "text"),
    [
        ("1\n00:00:01,000 --> 00:00:02,000\ncafé ✓\n".encode("utf-8-sig"), "café ✓"),
        ("1\n00:00:01,000 --> 00:00:02,000\ncafé ✓\n".encode("utf-16"), "café ✓"),
        ("1\n00:00:01,000 --> 00:00:02,000\ncafé ✓\n".encode("utf-16-be").join([b"\xfe\xff", b""]), "café ✓"),
        (
            "1\r\n00:00:01,000 --> 00:00:02,000\r\nnaïve \u2013 “quoted”\r\n".encode("cp1252"),
            "naïve \u2013 “quoted”",
        ),
    ],
)
def test_text_is_decoded_by_its_byte_order_mark_else_utf8_else_windows_1252(data: bytes, text: str) -> None:
    [cue] = subtitles.read(data)
    assert cue.text == text


def test_a_charset_sent_with_the_file_is_used() -> None:
    hello = "\u041f\u0440\u0438\u0432\u0435\u0442"  # Russian, in KOI8-R: no byte order mark, not UTF-8
    data = f"1\n00:00:01,000 --> 00:00:02,000\n{hello}\n".encode("koi8-r")
    assert subtitles.read(data, charset="koi8-r")[0].text == hello
    with pytest.raises(CaptionError, match="unknown charset"):
        subtitles.read(data, charset="x-nope")


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"WEBVTT\n\n99:99:99.999 --> 100:00:00.000\nx\n", "line 3: 99:99:99.999 is not a time"),
        (b"1\n00:00:02,000 --> 00:00:01,000\nbackwards\n", "line 2: the cue ends at 00:00:01,000"),
        (b"1\n00:00:02,000 --> 00:00:02,000\nempty\n", "line 2: the cue ends"),
        (b"1\n00:00:01,000 --> soon\nx\n", "line 2: 'soon' is not a time"),
        (b"hello\nworld\n", "line 1: expected a cue timing line"),
        (b"WEBVTT\n\nsome words\nmore words\n", "line 3: expected a cue timing line"),
        (b"WEBVTTX\n\n00:01.000 --> 00:02.000\nx\n", "line 1: the WebVTT signature"),
        (b"WEBVTT\n\n00:01.000 --> 00:02.000\na\x00b\n", "line 4 holds a NUL character"),
        ("1\n00:00:01,000 --> 00:00:02,000\nhi\n".encode("utf-16-le"), "line 1 holds a NUL character"),
        (b"1\n00:00:01,000 --> 00:00:02,000\n\x81\x8d\n", "line 3: byte 0x81 is not cp1252 text"),
        (b"", "holds no cues"),
        (b"WEBVTT\n\nNOTE only a note\n", "holds no cues"),
        (b"1\n00:00:01,000 --> 00:00:02,000\n" + b"x" * 5000 + b"\n", "line 3 is 5000 characters long"),
        (b"x" * subtitles.MAX_BYTES, f"line 1 is {subtitles.MAX_BYTES} characters long"),
        (b"x" * (subtitles.MAX_BYTES + 1), "caption files are at most"),
    ],
)
def test_malformed_files_are_refused_naming_the_line_and_what_to_fix(data: bytes, says: str) -> None:
    assert says in _refused(data)


def test_cues_after_the_end_of_the_media_are_refused() -> None:
    data = b"1\n00:00:01,000 --> 00:00:02,000\nfine\n\n2\n00:00:12,000 --> 00:00:13,000\nlate\n"
    assert "line 6: the cue starts at 00:00:12.000, after the media ends (00:00:10.000)" in _refused(
        data, duration_s=10
    )
    assert len(subtitles.read(data, duration_s=12.5)) == 2


def test_overlapping_cues_stay_and_cues_out_of_order_are_sorted_by_start() -> None:
    data = (
        b"WEBVTT\n\n00:05.000 --> 00:07.000\nlater\n\n00:01.000 --> 00:06.000\nlong\n\n"
        b"00:02.000 --> 00:03.000\noverlaps long\n"
    )
    cues = subtitles.read(data)
    assert [(c.start_ms, c.end_ms, c.text) for c in cues] == [
        (1000, 6000, "long"),
        (2000, 3000, "overlaps long"),
        (5000, 7000, "later"),
    ]


def test_srt_without_blank_lines_between_cues_still_splits_them() -> None:
    data = b"1\n00:00:01,000 --> 00:00:02,000\none\n2\n00:00:03,000 --> 00:00:04,000\ntwo\n"
    assert [c.text for c in subtitles.read(data)] == ["one", "two"]


def test_more_cues_than_the_limit_are_refused() -> None:
    cue = "00:00.000 --> 00:00.001\nx\n\n"
    data = ("WEBVTT\n\n" + cue * 75_000).encode()
    assert len(data) <= subtitles.MAX_BYTES
    assert f"more than {subtitles.MAX_CUES} cues; split the file" in _refused(data)


@pytest.mark.parametrize(
    "text",
    [
        "<b><i>" + "<c.a><v x>&amp;&#x41;<script>" * 20 + "{\\an8}<" * 40 + "</i></b>",
        "<b>" * 600 + "</i>" * 400,
        "&#x41;&lt;" * 400,
        "<v a b c>" * 400,
    ],
)
def test_a_2_mb_file_of_hostile_markup_parses_in_bounded_time(text: str) -> None:
    # The most work per byte the parser can be made to do, at the largest size the API takes. CPU time,
    # not wall time: the bound is what parsing costs the API, whatever else the machine runs.
    cue = f"00:00:01.000 --> 00:00:02.000 align:start bogus:x\n{text}\n\n"
    data = ("WEBVTT\n\n" + cue * (subtitles.MAX_BYTES // len(cue))).encode()
    data = data[: data.rfind(b"\n\n") + 2]
    assert len(data) > subtitles.MAX_BYTES * 0.9
    started = time.process_time()
    cues = subtitles.read(data)
    elapsed = time.process_time() - started
    assert len(cues) > 400 and "<script" not in subtitles.to_webvtt(cues)
    assert elapsed < 2.0, f"parsing a 2 MB file took {elapsed:.2f} s of CPU"
