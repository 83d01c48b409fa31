"""ffprobe's and ffmpeg's complaints about a source, in words a person reads: the one place they are turned.

A job's error is read by people in the web UI and the CLI; "moov atom not found; Invalid data found when
processing input" tells them nothing they can act on. What the tool said goes to the server log (with the
job's id beside it in the worker's log lines), and the error says what is wrong with the file and what to do.
"""

from __future__ import annotations

import logging
import re

log = logging.getLogger(__name__)

# What ffmpeg's decoders say when the bytes they read are not a valid picture or sound: the file is damaged
# there. ffmpeg run with `-xerror` stops at the first, and the last line it prints is the decoder's own, with
# no "Error while decoding" after it. The strings are libavcodec 59's (ffmpeg 5.1, as installed):
# aacdec_template.c, h264_cavlc.c, h264_mb.c, h264_slice.c, h264dec.c, h2645_parse.c, hevcdec.c, mpegaudiodec.
DECODER_DAMAGE = "|".join(
    (
        r"corrupt",
        r"error while decoding",
        r"concealing",
        # AAC
        r"channel element \d+\.\d+ (is not allocated|duplicate)",
        r"Input buffer exhausted before END element",
        r"Number of (scalefactor )?bands.* exceeds limit",
        r"invalid band type",
        r"Prediction is not allowed in AAC-LC",
        r"Pulse tool not allowed",
        r"Reserved bit set",
        r"Error decoding AAC frame header",
        r"TNS filter order",
        r"Scalefactor \(-?\d+\) out of range",
        r"SBR was found before the first channel element",
        r"invalid sampling rate index",
        # H.264
        r"decode_slice",
        r"Invalid level prefix",
        r"cbp too large",
        r"dquant out of range",
        r"mb_type \d+ in . slice too large",
        r"out of range intra chroma pred mode",
        r"block unavailable for requested intra",
        r"negative number of zero coeffs",
        r"sub_mb_type \d+ out of range",
        r"Invalid mix of IDR and non-IDR slices",
        r"Invalid NAL unit",
        r"non-existing PPS",
        r"Error splitting the input into NAL units",
        r"reference overflow",
        r"no frame!",
        # HEVC, MP3
        r"Error parsing NAL unit",
        r"Header missing",
    )
)
# A decode that stopped on damage: a decoder's complaint, or the "Invalid data" of the demuxer or ffmpeg.
DAMAGE = re.compile(f"{DECODER_DAMAGE}|invalid data", re.IGNORECASE)
DAMAGED_AT = "the file is damaged"
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
    (DECODER_DAMAGE, DAMAGED_AT),
    (r"Invalid data found when processing input|Invalid argument", DAMAGED),
)


def unreadable(tool_said: str, *, tool: str = "ffprobe") -> str:
    """What to tell a person when `tool` could not read a source; the tool's words are logged, not shown."""
    log.info("%s could not read a source: %s", tool, tool_said)
    for pattern, message in RULES:
        if re.search(pattern, tool_said, re.IGNORECASE):
            return message
    return UNKNOWN
