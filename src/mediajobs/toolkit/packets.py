"""A source's video packets, demuxed but not decoded: frame times, keyframes, and whether a copy is exact.

Reading packets costs a pass over the file's bytes and no decoding (about a second for an hour of 1080p from
the page cache), and tells what the segment grid needs: where every frame starts, where keyframes are, and
the signs that a stream copy would not play exactly as the source does.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path

from mediajobs import process
from mediajobs.errors import UnsupportedMedia
from mediajobs.sandbox import Limits
from mediajobs.toolkit.inputs import PROBE_CPU_S, input_args, read_limit_s
from mediajobs.toolkit.probe import FFPROBE

SCAN_TIMEOUT_S = 600.0
SCAN_CPU_PER_MEDIA_S = 0.05


@dataclass(frozen=True)
class VideoIndex:
    """Presentation times of the first video stream's frames and keyframes (sorted, source timeline)."""

    frames: list[float]
    keyframes: list[float]
    end: float
    problems: list[str] = field(default_factory=list)

    @property
    def start(self) -> float:
        return self.frames[0]

    @property
    def longest_gop_s(self) -> float:
        marks = [*self.keyframes, self.end]
        return max((b - a for a, b in itertools.pairwise(marks)), default=0.0)


def scan(path: str | Path, *, duration_s: float, until_s: float | None = None) -> VideoIndex:
    """Every packet of the first video stream (cover pictures aside); UnsupportedMedia when there is none.

    Reads at most a little past the probed `duration_s`, with CPU time in proportion to it; with `until_s`,
    only the packets of the stream's first `until_s` seconds (a prefix: `prefix_s` says whether one
    would be shorter than the whole).
    """
    reach = read_limit_s(duration_s) if until_s is None else min(until_s, read_limit_s(duration_s))
    args = [FFPROBE, "-v", "error", "-select_streams", "V:0"]
    args += ["-show_entries", "packet=pts_time,dts_time,duration_time,flags", "-of", "csv=p=0"]
    done = process.run(
        # ffprobe has no -t: read_intervals bounds how far it reads.
        [*args, "-read_intervals", f"%+{reach:.3f}", *input_args(path)],
        capture_stdout=True,
        timeout_s=SCAN_TIMEOUT_S,
        limits=Limits(cpu_s=PROBE_CPU_S + SCAN_CPU_PER_MEDIA_S * reach),
        network=False,
    )
    return parse((done.stdout or "").splitlines())


def prefix_s(duration_s: float, wanted_s: float) -> float | None:
    """How much of a `duration_s` stream to index first when `wanted_s` is enough to start with: None when
    that would be (nearly) all of it."""
    return wanted_s if duration_s > 2 * wanted_s else None


def parse(lines: list[str]) -> VideoIndex:
    """Build the index from ffprobe's `pts_time,dts_time,duration_time,flags` lines (decode order)."""
    frames: list[float] = []
    keyframes: list[float] = []
    problems: list[str] = []
    end = 0.0
    last_dts: float | None = None
    untimed = backwards = discarded = corrupt = 0
    for line in lines:
        parts = line.strip().split(",")
        if len(parts) < 4:
            continue
        pts, dts, duration, flags = _time(parts[0]), _time(parts[1]), _time(parts[2]), parts[3]
        if pts is None:
            untimed += 1
            continue
        if "D" in flags:
            discarded += 1  # an edit list hides it: a copy would show what the source does not
        if "C" in flags:
            corrupt += 1
        if dts is not None:
            if last_dts is not None and dts <= last_dts:
                backwards += 1
            last_dts = dts
        if not frames and "K" not in flags:
            problems.append("the video does not start with a keyframe")
        frames.append(pts)
        if "K" in flags:
            keyframes.append(pts)
        end = max(end, pts + (duration or 0.0))
    if not frames:
        raise UnsupportedMedia("the video stream has no timed packets")
    frames.sort()
    keyframes.sort()
    if len(set(frames)) != len(frames):
        problems.append("two frames share a timestamp")
    for count, what in (
        (untimed, "packets without a timestamp"),
        (backwards, "decode timestamps that go backwards"),
        (discarded, "packets an edit list discards"),
        (corrupt, "packets marked corrupt"),
    ):
        if count:
            problems.append(f"{count} {what}")
    return VideoIndex(frames, keyframes, max(end, frames[-1]), problems)


def _time(raw: str) -> float | None:
    try:
        return float(raw)
    except ValueError:  # "N/A"
        return None


_START_CODE = re.compile(b"\x00\x00\x01")
H264_IDR, H264_SLICE = 5, 1
TS_PACKET = 188


def first_slice_is_idr(segment: str | Path, *, read_bytes: int = 1 << 20) -> bool:
    """Whether the first picture of an MPEG-TS segment's H.264 stream is an IDR (decodable on its own).

    A keyframe index can call a picture a keyframe that is not one (a broken index, or an open-GOP I-frame
    whose leading pictures refer to the segment before): a segment starting there shows garbage after a seek.
    """
    with open(segment, "rb") as f:
        data = f.read(read_bytes)
    payload = _first_pes(data)
    for match in _START_CODE.finditer(payload):
        if match.end() >= len(payload):
            break
        nal_type = payload[match.end()] & 0x1F
        if nal_type == H264_IDR:
            return True
        if nal_type == H264_SLICE:
            return False
    return False


def _first_pes(data: bytes) -> bytes:
    """The payload of the first PES packet of the first H.264 stream of a transport stream."""
    pmt_pid = video_pid = None
    payload = bytearray()
    started = False
    for offset in range(0, len(data) - TS_PACKET + 1, TS_PACKET):
        packet = data[offset : offset + TS_PACKET]
        if packet[0] != 0x47:
            return b""
        unit_start = bool(packet[1] & 0x40)
        pid = ((packet[1] & 0x1F) << 8) | packet[2]
        control = (packet[3] >> 4) & 3
        body = packet[4 + (1 + packet[4] if control & 2 else 0) :] if control & 1 else b""
        if not body:
            continue
        if pid == 0 and unit_start and pmt_pid is None:
            pmt_pid = _pat_first_program(body)
        elif pid == pmt_pid and unit_start and video_pid is None:
            video_pid = _pmt_h264_pid(body)
        elif pid == video_pid and video_pid is not None:
            if unit_start:
                if started:
                    break
                started = True
                body = body[9 + body[8] :]  # the PES header
            if started:
                payload += body
    return bytes(payload)


def _pat_first_program(body: bytes) -> int | None:
    table = body[1 + body[0] :]
    length = ((table[1] & 0x0F) << 8) | table[2]
    entries = table[8 : 3 + length - 4]
    for i in range(0, len(entries) - 3, 4):
        if (entries[i] << 8) | entries[i + 1]:
            return ((entries[i + 2] & 0x1F) << 8) | entries[i + 3]
    return None


def _pmt_h264_pid(body: bytes) -> int | None:
    table = body[1 + body[0] :]
    length = ((table[1] & 0x0F) << 8) | table[2]
    info_length = ((table[10] & 0x0F) << 8) | table[11]
    i, end = 12 + info_length, 3 + length - 4
    while i + 4 < end:
        stream_type, pid = table[i], ((table[i + 1] & 0x1F) << 8) | table[i + 2]
        if stream_type == 0x1B:  # H.264
            return pid
        i += 5 + (((table[i + 3] & 0x0F) << 8) | table[i + 4])
    return None
