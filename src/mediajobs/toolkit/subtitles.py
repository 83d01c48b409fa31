"""Caption files: SRT or WebVTT bytes read into cues, their text reduced to WebVTT's own markup, written back.

What strangers upload is played in browsers, so only WebVTT's cue markup survives (`<c>`, `<i>`, `<b>`,
`<u>`, `<ruby>`, `<rt>`, `<v>`, `<lang>` with classes, and timestamp tags); every other tag is removed with
its brackets (its text stays, as a WebVTT parser would show it), every `&`, `<` and `>` left in the text is
escaped, STYLE, REGION and NOTE blocks are dropped, and of the cue settings only WebVTT's positioning ones
are kept. The work is one pass over the lines with anchored patterns, linear in the file's size.
"""

from __future__ import annotations

import codecs
import html
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from mediajobs.errors import InvalidParams

MAX_BYTES = 2 * 1024 * 1024
MAX_CUES = 20_000
MAX_LINE_CHARS = 4096
MAX_CUE_CHARS = 4096
MAX_DEPTH = 16  # tags open inside each other in one cue; deeper ones are dropped (captions nest 2 or 3)
# Files that are not UTF-8 (nor UTF-16/32 with a byte order mark) are read as Windows-1252, the encoding
# of most old SRT files (it is Latin-1 with printable characters in 0x80-0x9F).
FALLBACK_ENCODING = "cp1252"

_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_TIMING = re.compile(r"(\S+)[ \t]+-->[ \t]+(\S+)(.*)")
_TIME = re.compile(r"(?:(\d{1,3}):)?(\d{1,2}):(\d{1,2})[.,](\d{1,3})")
_SIGNATURE = re.compile(r"WEBVTT(?:[ \t].*)?")
_SKIPPED_BLOCKS = re.compile(r"(?:NOTE|STYLE|REGION)(?:[ \t].*)?")
_CONTROLS = re.compile(r"[\x01-\x08\x0b-\x1f\x7f]")
_ASS_OVERRIDE = re.compile(r"\{\\[^{}]*\}")  # SRT files written by Aegisub and friends: {\an8}, {\i1}
_TAG = re.compile(r"<([A-Za-z0-9/][^<>]*)>")
_TAG_NAME = re.compile(r"(/?)(c|i|b|u|ruby|rt|v|lang)((?:\.[A-Za-z0-9_-]+)*)(?:[ \t\f]+(.*))?", re.S)
_TIMESTAMP_TAG = re.compile(r"(?:\d{2,}:)?[0-5]\d:[0-5]\d\.\d{3}")
_SETTINGS = {
    "vertical": re.compile(r"rl|lr"),
    "line": re.compile(r"-?\d{1,3}(?:\.\d{1,3})?%?(?:,(?:start|center|end))?"),
    "position": re.compile(r"\d{1,3}(?:\.\d{1,3})?%(?:,(?:line-left|center|line-right))?"),
    "size": re.compile(r"\d{1,3}(?:\.\d{1,3})?%"),
    "align": re.compile(r"start|center|end|left|right"),
}


class CaptionError(InvalidParams):
    """A caption file that cannot be read; the message names the line and says what to fix."""


@dataclass(frozen=True)
class Cue:
    """One caption: shown from `start_ms` to `end_ms`, its text already in WebVTT cue syntax."""

    start_ms: int
    end_ms: int
    text: str
    settings: str = ""
    line: int = field(default=0, compare=False)  # where its timing is in the file, for messages


def decode(data: bytes, charset: str | None = None) -> str:
    """The text: by its byte order mark, else the `charset` sent with it, else UTF-8, else Windows-1252."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return _decode(data, encoding)
    if charset:
        try:
            codecs.lookup(charset)
        except LookupError:
            raise CaptionError(f"unknown charset {charset[:40]!r}; send the file as UTF-8") from None
        return _decode(data, charset)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return _decode(data, FALLBACK_ENCODING)


def _decode(data: bytes, encoding: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise CaptionError(
            f"line {line}: byte 0x{data[exc.start]:02x} is not {encoding} text; save the file as UTF-8"
        ) from None


def parse(text: str) -> list[Cue]:
    """The cues of an SRT or WebVTT file (WebVTT when it starts with `WEBVTT`), in order of their start."""
    lines = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    for number, line in enumerate(lines, start=1):
        if "\x00" in line:
            raise CaptionError(
                f"line {number} holds a NUL character; captions are text (a UTF-16 file needs its byte "
                "order mark, or save it as UTF-8)"
            )
        if len(line) > MAX_LINE_CHARS:
            raise CaptionError(
                f"line {number} is {len(line)} characters long; caption lines are at most {MAX_LINE_CHARS}"
            )
    webvtt = bool(_SIGNATURE.fullmatch(lines[0])) if lines else False
    if not webvtt and lines and lines[0].startswith("WEBVTT"):
        raise CaptionError("line 1: the WebVTT signature must be 'WEBVTT' alone or followed by a space")
    cues: list[Cue] = []
    for first, block in _blocks(lines, skip_header=webvtt):
        if webvtt and _SKIPPED_BLOCKS.fullmatch(block[0]):
            continue
        cues.extend(_cues(first, block, webvtt=webvtt))
        if len(cues) > MAX_CUES:
            raise CaptionError(f"line {first}: more than {MAX_CUES} cues; split the file")
    if not cues:
        raise CaptionError("the file holds no cues ('00:00:01.000 --> 00:00:02.000' lines followed by text)")
    return sorted(cues, key=lambda c: c.start_ms)  # stable: cues starting together keep their order


def _blocks(lines: list[str], *, skip_header: bool) -> Iterator[tuple[int, list[str]]]:
    """(number of its first line, lines) of each block of lines between blank lines.

    With `skip_header`, the first block is the WebVTT header, left out up to a cue timing in it (a file
    without the blank line after its header).
    """
    block: list[str] = []
    start = 0
    in_header = skip_header
    for number, line in enumerate([*lines, ""], start=1):
        if line.strip():
            if not block:
                start = number
            block.append(line)
            continue
        if block and in_header:
            timing = next((i for i, text in enumerate(block) if "-->" in text), None)
            block, start = (block[timing:], start + timing) if timing is not None else ([], start)
        if block:
            yield start, block
        block, in_header = [], False


def _cues(first: int, block: list[str], *, webvtt: bool) -> Iterator[Cue]:
    """The cues of one block: usually one; a timing line inside the text starts another (no blank line)."""
    timing = next((i for i, line in enumerate(block[:2]) if "-->" in line), None)
    if timing is None:
        raise CaptionError(
            f"line {first}: expected a cue timing line like '00:00:01.000 --> 00:00:04.000'"
            + (" (or a NOTE, STYLE or REGION block)" if webvtt else " after the cue number")
        )
    i = timing
    while i < len(block):
        number = first + i
        match = _TIMING.fullmatch(block[i].strip())
        if match is None:
            raise CaptionError(
                f"line {number}: a timing line is 'start --> end', e.g. 00:00:01.000 --> 00:00:04.000"
            )
        start, end = _time(match[1], number), _time(match[2], number)
        if end <= start:
            raise CaptionError(
                f"line {number}: the cue ends at {match[2]}, not after it starts ({match[1]}); "
                "each cue's end must be later than its start"
            )
        text: list[str] = []
        i += 1
        while i < len(block) and "-->" not in block[i]:
            text.append(block[i])
            i += 1
        if i < len(block) and text and not webvtt and text[-1].strip().isdigit():
            text.pop()  # the next SRT cue's number, with no blank line before it
        raw = "\n".join(text)
        if len(raw) > MAX_CUE_CHARS:
            raise CaptionError(f"line {number}: the cue's text is over {MAX_CUE_CHARS} characters")
        yield Cue(start, end, sanitize(raw), _settings(match[3]) if webvtt else "", line=number)


def _time(value: str, number: int) -> int:
    match = _TIME.fullmatch(value)
    if match is None:
        raise CaptionError(f"line {number}: {value[:40]!r} is not a time; write hh:mm:ss.ttt (or mm:ss.ttt)")
    hours, minutes, seconds, fraction = match.groups()
    if int(minutes) > 59 or int(seconds) > 59:
        raise CaptionError(f"line {number}: {value} is not a time: minutes and seconds run from 00 to 59")
    millis = int(fraction.ljust(3, "0"))
    return ((int(hours or 0) * 60 + int(minutes)) * 60 + int(seconds)) * 1000 + millis


def _settings(raw: str) -> str:
    """The cue settings WebVTT positions a cue with; anything else (regions included) is dropped."""
    kept = []
    for token in raw.split():
        name, _, value = token.partition(":")
        pattern = _SETTINGS.get(name)
        if pattern is not None and pattern.fullmatch(value):
            kept.append(f"{name}:{value}")
    return " ".join(kept)


def sanitize(text: str) -> str:
    """Cue text with only WebVTT's tags, balanced, and everything else escaped as text."""
    if "{" in text:
        text = _ASS_OVERRIDE.sub("", text)
    text = _CONTROLS.sub("", text)
    if "<" not in text:
        return _escape(text).strip()
    # A tag is '<', a letter, digit or '/', then anything but '<' up to '>'; any other '<' is text.
    parts = _TAG.split(text)  # text, tag, text, tag, ..., text
    out: list[str] = []
    open_tags: list[str] = []
    for i, part in enumerate(parts):
        if i % 2:
            out.append(_tag(part, open_tags))
        elif part:
            out.append(_escape(part))
    out.extend(f"</{name}>" for name in reversed(open_tags))
    return "".join(out).strip()


def _tag(inner: str, open_tags: list[str]) -> str:
    """A WebVTT tag as it may stay (annotation escaped), or '' for anything else."""
    if inner[0].isdigit():
        return f"<{inner}>" if _TIMESTAMP_TAG.fullmatch(inner) else ""
    match = _TAG_NAME.fullmatch(inner)
    if match is None:
        return ""
    closing, name, classes, annotation = match.groups()
    if closing:
        if name not in open_tags:
            return ""
        # Closing an outer tag closes the ones opened inside it, as a WebVTT parser would.
        closed = []
        while open_tags:
            last = open_tags.pop()
            closed.append(f"</{last}>")
            if last == name:
                break
        return "".join(closed)
    if len(open_tags) >= MAX_DEPTH:
        return ""
    open_tags.append(name)
    words = " ".join((annotation or "").split())
    if name in ("v", "lang") and words:
        return f"<{name}{classes} {_escape(words)}>"
    return f"<{name}{classes}>"


def _escape(text: str) -> str:
    if "&" in text:
        text = html.unescape(text).replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    return text


def timestamp(ms: int) -> str:
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}"


def to_webvtt(cues: Iterable[Cue], *, header: Iterable[str] = ()) -> str:
    """A WebVTT file of `cues`; `header` lines (e.g. an X-TIMESTAMP-MAP) follow the signature."""
    parts = ["\n".join(["WEBVTT", *header])]
    for cue in cues:
        timing = f"{timestamp(cue.start_ms)} --> {timestamp(cue.end_ms)}"
        parts.append(f"{timing} {cue.settings}".rstrip() + ("\n" + cue.text if cue.text else ""))
    return "\n\n".join(parts) + "\n"


def read(data: bytes, *, charset: str | None = None, duration_s: float | None = None) -> list[Cue]:
    """The cues of an uploaded SRT or WebVTT file; CaptionError naming the line of anything wrong."""
    if len(data) > MAX_BYTES:
        raise CaptionError(f"the file is {len(data)} bytes; caption files are at most {MAX_BYTES} bytes")
    cues = parse(decode(data, charset))
    if duration_s is not None:
        late = next((c for c in cues if c.start_ms >= duration_s * 1000), None)
        if late is not None:
            raise CaptionError(
                f"line {late.line}: the cue starts at {timestamp(late.start_ms)}, after the media ends "
                f"({timestamp(int(duration_s * 1000))}); are these the captions of this asset?"
            )
    return cues
