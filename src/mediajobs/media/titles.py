"""Asset titles: plain text a person reads, made from a file name, a page title or an operation.

A title is text, never markup: whatever it holds is shown as text. What is taken out are characters that
change how text around them reads — control characters, bidirectional overrides (which turn "gpj.exe"
into "exe.jpg" on screen), zero-width characters — and runs of white space.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

MAX_LENGTH = 200
UNTITLED = "Untitled"
# Dashes of derived titles: "holiday — clip 0:20–0:30".
SEPARATOR = " — "
RANGE_DASH = "–"
MAX_LISTED = 6
# C0 and C1 controls, DEL, bidi embeddings/overrides/isolates, zero-width characters, the BOM, line and
# paragraph separators, and lone surrogates (JSON's "\\ud800" is no character and cannot be stored).
_HIDDEN = re.compile(
    "[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2028\u2029\u2060-\u2064\u2066-\u2069\ufeff\ud800-\udfff]"
)
_SPACES = re.compile(r"\s+")


class InvalidTitle(ValueError):
    """A title a person sent that cannot be used as it is."""


def clean(text: str) -> str:
    """`text` as a one-line plain title: normalised (NFC), hidden characters out, white space collapsed."""
    text = unicodedata.normalize("NFC", text)
    text = _HIDDEN.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


def fit(text: str, default: str = UNTITLED) -> str:
    """A title made from `text` by the service: cleaned, and cut with an ellipsis when too long."""
    title = clean(text)
    if len(title) > MAX_LENGTH:
        title = title[: MAX_LENGTH - 1].rstrip() + "…"
    return title or default


def chosen(value: Any) -> str:
    """A title a person chose (PATCH): InvalidTitle when it is not a string, empty, or too long."""
    if not isinstance(value, str):
        raise InvalidTitle("the title must be a string")
    title = clean(value)
    if not title:
        raise InvalidTitle("the title is empty; give the asset a name")
    if len(title) > MAX_LENGTH:
        raise InvalidTitle(f"the title has {len(title)} characters; at most {MAX_LENGTH} are allowed")
    return title


def search_key(text: str) -> str:
    """What titles are searched by: case-folded, so that a search ignores case in every script."""
    return clean(text).casefold()


def from_filename(name: str | None) -> str:
    """An upload's title: its file name without the folders and the extension ("holiday.mp4" → "holiday")."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    stem, dot, ext = base.rpartition(".")
    if dot and stem and 0 < len(ext) <= 5 and ext.isalnum():
        base = stem
    return fit(base)


def from_url(url: str) -> str:
    """An import's title until its page title is known: the URL's last path part, else its host."""
    parts = urlsplit(url)
    last = unquote(parts.path.rstrip("/").rsplit("/", 1)[-1])
    return from_filename(last) if last else fit(parts.hostname or url)


def clock(seconds: float) -> str:
    """A time as people write it: 0:02, 1:05.5, 1:02:03."""
    tenths = round(max(0.0, seconds) * 10)
    whole, fraction = divmod(tenths, 10)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
    return f"{text}.{fraction}" if fraction else text


def span(start: float, end: float | None, duration: float | None = None) -> str:
    """ "0:02–0:05"; an open end is the asset's end ("0:02–end" when the duration is unknown)."""
    if end is None or (duration is not None and math.isclose(end, duration, abs_tol=0.05)):
        end = duration
    return f"{clock(start)}{RANGE_DASH}{clock(end) if end is not None else 'end'}"


def listed(spans: Sequence[str]) -> str:
    unique = list(dict.fromkeys(spans))
    shown = ", ".join(unique[:MAX_LISTED])
    return shown if len(unique) <= MAX_LISTED else f"{shown} and {len(unique) - MAX_LISTED} more"


def masked(params: dict[str, Any], duration: float | None) -> str:
    """ "masked 0:02–0:05", "muted", "without sound", "bleeped 0:01–0:02", or several of them."""
    regions = params.get("regions") or []
    parts = []
    if regions:
        spans = [span(r.get("start") or 0.0, r.get("end"), duration) for r in regions]
        parts.append(f"masked {listed(spans)}")
    parts += {"mute": ["muted"], "remove": ["without sound"]}.get(params.get("audio") or "keep", [])
    ranges = sorted(params.get("audio_ranges") or [], key=lambda r: r["start"])
    for style, done in (("mute", "muted"), ("bleep", "bleeped")):
        chosen = [span(r["start"], r["end"], duration) for r in ranges if r.get("style", "mute") == style]
        if chosen:
            parts.append(f"{done} {listed(chosen)}")
    return ", ".join(parts) or "masked"


def derived(parent_title: str, operation: str, params: dict[str, Any], duration: float | None) -> str:
    """The title of what an operation makes: "holiday — masked 0:02–0:05", "holiday — cut 0:10–0:12"."""
    if operation == "mask":
        what = masked(params, duration)
    elif operation == "remove_frames":
        ranges = sorted(params.get("ranges") or [], key=lambda r: r["start"])
        what = "cut " + listed([span(r["start"], r["end"], duration) for r in ranges])
    elif operation == "clip":
        crop = params.get("crop")
        what = "clip " + span(params["start"], params["end"]) + (f" ({crop['aspect']})" if crop else "")
    else:
        what = operation.replace("_", " ")
    return fit(f"{parent_title or UNTITLED}{SEPARATOR}{what}")
