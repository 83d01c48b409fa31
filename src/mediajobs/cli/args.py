"""The argument syntax of the media operation commands: times, ranges, regions and crops.

    time     12.5 | 1:05 | 1:05.5 | 1:02:03          (seconds, or minutes:seconds, or hours:minutes:seconds)
    range    START-END                              --range 1.5-3.0, --range 1:05-1:10.5
    region   x,y,w,h[,start[,end]][:style]          --region 10,20,320,180,2,5:black  (end "end": to the end)
    sound    START-END[:style]                      --audio-range 1.5-3.0, --audio-range 1:05-1:10:bleep
    crop     ASPECT[@X]                             --crop 9:16, --crop 9:16@0.3

Each parser raises click.BadParameter saying what was wrong and showing the right form.
"""

from __future__ import annotations

import math
import re
from typing import Any

import click

STYLES = ("blur", "black", "pixelate")
SOUND_STYLES = ("mute", "bleep")
ASPECTS = ("9:16", "1:1", "4:5", "16:9")
REGION_FORM = "x,y,w,h[,start[,end]][:style], e.g. 10,20,320,180 or 10,20,320,180,2,5:black"
RANGE_FORM = "START-END in seconds (or m:ss), e.g. 1.5-3.0 or 1:05-1:10.5"
AUDIO_RANGE_FORM = "START-END[:style] with style mute or bleep, e.g. 1.5-3.0 or 1:05-1:10:bleep"
CROP_FORM = (
    f"ASPECT[@X] with ASPECT one of {', '.join(ASPECTS)} and X from 0 (left) to 1 (right), e.g. 9:16@0.3"
)
_CLOCK = re.compile(r"(?:(\d+):)?(\d+):(\d+(?:\.\d+)?)")
_RANGE_DASHES = re.compile(r"\s*(?:-|–|—|\.\.)\s*")


def parse_time(text: str, what: str = "time") -> float:
    """Seconds from `12.5`, `1:05`, `1:05.5` or `1:02:03`; BadParameter otherwise."""
    raw = text.strip()
    if clock := _CLOCK.fullmatch(raw):
        hours, minutes, seconds = clock.groups()
        if (int(minutes) >= 60 and hours is not None) or float(seconds) >= 60:
            raise click.BadParameter(f"{what} {text!r}: minutes and seconds go up to 59")
        return int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds)
    try:
        value = float(raw)
    except ValueError:
        raise click.BadParameter(
            f"{what} {text!r} is not a time; write seconds (12.5) or minutes:seconds (1:05)"
        ) from None
    if not math.isfinite(value) or value < 0:
        raise click.BadParameter(f"{what} {text!r}: a time is a number of seconds from 0")
    return value


def parse_range(text: str) -> dict[str, float]:
    """`{"start", "end"}` from START-END; BadParameter naming the problem."""
    parts = _RANGE_DASHES.split(text.strip())
    if len(parts) != 2 or not all(parts):
        raise click.BadParameter(f"{text!r} is not a range; write {RANGE_FORM}")
    start, end = parse_time(parts[0], "start"), parse_time(parts[1], "end")
    if end <= start:
        raise click.BadParameter(f"{text!r}: the end ({parts[1]}) must come after the start ({parts[0]})")
    return {"start": start, "end": end}


def parse_audio_range(text: str) -> dict[str, Any]:
    """A range of the sound to mask (the API's `audio_ranges` item) from START-END[:style]."""
    body, style = text.strip(), "mute"
    if found := re.fullmatch(r"(.*):([A-Za-z]+)", body):
        body, style = found.group(1), found.group(2).lower()
        if style not in SOUND_STYLES:
            raise click.BadParameter(f"{text!r}: unknown style {style!r}; one of {', '.join(SOUND_STYLES)}")
    if not _RANGE_DASHES.search(body):
        raise click.BadParameter(f"{text!r} is not a range of the sound; write {AUDIO_RANGE_FORM}")
    return {**parse_range(body), "style": style}


def parse_region(text: str) -> dict[str, Any]:
    """A mask region (the API's `regions` item) from x,y,w,h[,start[,end]][:style]."""
    body, style = text.strip(), "blur"
    if found := re.fullmatch(r"(.*):([A-Za-z]+)", body):
        body, style = found.group(1), found.group(2).lower()
        if style not in STYLES:
            raise click.BadParameter(f"{text!r}: unknown style {style!r}; one of {', '.join(STYLES)}")
    parts = [part.strip() for part in body.split(",")]
    if not 4 <= len(parts) <= 6:
        raise click.BadParameter(f"{text!r} is not a region; write {REGION_FORM}")
    box: list[int] = []
    for name, part in zip(("x", "y", "w", "h"), parts[:4], strict=True):
        if not part.isdigit():
            raise click.BadParameter(f"{text!r}: {name} must be a whole number of pixels, not {part!r}")
        box.append(int(part))
    if box[2] == 0 or box[3] == 0:
        raise click.BadParameter(f"{text!r}: the width and height must be at least 1 pixel")
    start = parse_time(parts[4], "start") if len(parts) > 4 else 0.0
    end = None if len(parts) < 6 or parts[5].lower() in ("", "end") else parse_time(parts[5], "end")
    if end is not None and end <= start:
        raise click.BadParameter(f"{text!r}: the end must come after the start (or be 'end')")
    return {"x": box[0], "y": box[1], "w": box[2], "h": box[3], "start": start, "end": end, "style": style}


def parse_crop(text: str) -> dict[str, Any]:
    """`{"aspect", "x"}` from ASPECT[@X]."""
    aspect, _, where = text.strip().partition("@")
    if aspect not in ASPECTS:
        raise click.BadParameter(f"{text!r} is not a crop; write {CROP_FORM}")
    try:
        x = float(where) if where else 0.5
    except ValueError:
        raise click.BadParameter(f"{text!r}: X must be a number from 0 to 1") from None
    if not 0 <= x <= 1:
        raise click.BadParameter(f"{text!r}: X must be from 0 (left edge) to 1 (right edge)")
    return {"aspect": aspect, "x": x}


def regions_option(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> list[dict[str, Any]]:
    return [parse_region(value) for value in values]


def ranges_option(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> list[dict[str, float]]:
    return [parse_range(value) for value in values]


def audio_ranges_option(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> list[dict[str, Any]]:
    return [parse_audio_range(value) for value in values]


def range_option(ctx: click.Context, param: click.Parameter, value: str | None) -> dict[str, float] | None:
    return None if value is None else parse_range(value)


def crop_option(ctx: click.Context, param: click.Parameter, value: str | None) -> dict[str, Any] | None:
    return None if value is None else parse_crop(value)


def pipeline_option(ctx: click.Context, param: click.Parameter, value: str | None) -> list[str] | None:
    return None if value is None else [step.strip() for step in value.split(",") if step.strip()]
