"""ffprobe's and ffmpeg's complaints about a source, in words a person reads: the one place they are turned.

A job's error is read by people in the web UI and the CLI; "moov atom not found; Invalid data found when
processing input" tells them nothing they can act on. What the tool said goes to the server log (with the
job's id beside it in the worker's log lines), and the error says what is wrong with the file and what to do.
"""

from __future__ import annotations

import logging
import re

log = logging.getLogger(__name__)

UNKNOWN = "the file could not be read as video or audio: it is damaged or in a format mediajobs does not read"
DAMAGED = "the file is damaged or is not a video or audio file; check that it plays, then upload it again"
# First match wins, tried against the tool's last lines.
RULES: tuple[tuple[str, str], ...] = (
    (
        r"moov atom not found",
        "the file is incomplete: an MP4 or MOV file whose index is missing, as when an upload or a "
        "recording stopped early; upload the whole file",
    ),
    (
        r"File ended prematurely|Truncating packet|truncated|End of file|partial file",
        "the file ends too early: it is cut short; upload the whole file",
    ),
    (r"EBML header parsing failed", "the file is not a valid Matroska/WebM file: " + DAMAGED),
    (r"Could not find codec parameters|unspecified size", "the file holds no stream that can be decoded"),
    (r"Invalid NAL unit|non-existing PPS|decode_slice|error while decoding|corrupt", "the file is damaged"),
    (r"Invalid data found when processing input|Invalid argument", DAMAGED),
)


def unreadable(tool_said: str, *, tool: str = "ffprobe") -> str:
    """What to tell a person when `tool` could not read a source; the tool's words are logged, not shown."""
    log.info("%s could not read a source: %s", tool, tool_said)
    for pattern, message in RULES:
        if re.search(pattern, tool_said, re.IGNORECASE):
            return message
    return UNKNOWN
