"""What a video stream's packets hold at the level of NAL units (H.264 and HEVC), read without decoding.

Two questions the packet index cannot answer from flags, answered by ffmpeg's bitstream filters in a copy
pass (`filter_units` keeps only the NAL types asked for; a packet left empty is dropped):

- Where can a decoder start afresh? An H.264 IDR or an HEVC IDR/BLA picture empties the decoder: what
  follows decodes the same whatever came before. Other keyframes (H.264 recovery points, the I-frames of
  x264's open GOPs; HEVC CRA pictures) continue the decoder's state (frame numbers, picture order counts,
  references), so a stream spliced in front of one confuses any decoder. An HEVC CRA becomes a clean start
  when marked as a BLA, the splice point HEVC defines (`splice_at_cra`: one NAL header byte per slice).
- What pictures do the parameter sets declare? A new SPS mid-stream can change the picture size (issue 17:
  64x64 for two seconds, then 8K), so a stream whose SPS declare other pictures than the probed ones is not
  copied as it is: it is decoded, and every decode is bounded by `-max_pixels` (`inputs.input_args`).
  The SPS are written out raw and read by `sps.pictures`.

`first_slice_is_idr` and `splice_at_cra` read and patch MPEG-TS files directly.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mediajobs.toolkit import sps
from mediajobs.toolkit.ffmpeg import run_ffmpeg, source_input
from mediajobs.toolkit.probe import Probe
from mediajobs.toolkit.sps import Picture

_START_CODE = re.compile(b"\x00\x00\x01")
H264_IDR, H264_SLICE = 5, 1
HEVC_CRA, HEVC_BLA_N_LP = 21, 18
TS_PACKET = 188
TS_H264, TS_HEVC = 0x1B, 0x24
# NAL unit types, as filter_units takes them.
SPS = {"h264": "7", "hevc": "33"}
FRESH_START = {"h264": "5", "hevc": "16-20"}  # IDR; for HEVC also BLA
CRA = {"hevc": str(HEVC_CRA)}
PARAMETER_SETS, FRESH, SPLICE = "sps.raw", "fresh.crc", "cra.crc"
# An SPS per keyframe is tens of bytes; more than this of them is no real stream (and is not read).
PARAMETER_SET_BYTES = 4 << 20
# The first PES packet of a piece holds one picture; a huge I-frame still fits.
FIRST_PES_BYTES = 32 << 20


@dataclass(frozen=True)
class Keyframes:
    """Presentation times (stream ticks) of the keyframes a decoder can start afresh at, and of HEVC CRAs."""

    fresh: frozenset[int]
    cra: frozenset[int]
    pictures: set[Picture] | None


def parameter_set_output(codec: str, raw: Path) -> list[str]:
    """An ffmpeg output writing the SPS NAL units of the first video stream, raw, for `picture_formats`."""
    units = f"{codec}_mp4toannexb,filter_units=pass_types={SPS[codec]}"
    limit = ["-fs", str(PARAMETER_SET_BYTES)]
    return ["-map", "0:V:0", "-c:v", "copy", "-bsf:v", units, *limit, "-f", codec, str(raw)]


def declared_pictures(src: Path, source: Probe, codec: str, *, work_dir: Path) -> set[Picture] | None:
    """What pictures the SPS of `src`'s first video stream declare, from a copy pass of their own (no
    decoding); None when they cannot be read."""
    with tempfile.TemporaryDirectory(prefix=".sps-", dir=work_dir) as tmp:
        raw = Path(tmp) / PARAMETER_SETS
        args = ["-v", "error", *source_input(src, source), *parameter_set_output(codec, raw)]
        run_ffmpeg(args, source.duration, None, source=source)
        return picture_formats(raw, codec)


def picture_formats(raw: Path, codec: str) -> set[Picture] | None:
    """The pictures the SPS of a `parameter_set_output` declare (none in band: empty); None if unreadable."""
    if not raw.is_file():
        return set()
    if raw.stat().st_size >= PARAMETER_SET_BYTES:
        return None
    try:
        return sps.pictures(raw, codec)
    except sps.Unreadable:
        return None


def keyframe_outputs(codec: str, directory: Path) -> list[str]:
    """ffmpeg outputs into `directory` for `read_keyframes`: fresh starts, CRAs and parameter sets."""
    args = []
    for name, types in ((FRESH, FRESH_START), (SPLICE, CRA)):
        if codec in types:
            units = f"filter_units=pass_types={types[codec]}"
            args += ["-map", "0:V:0", "-c:v", "copy", "-bsf:v", units]
            args += ["-f", "framecrc", str(directory / name)]
    return [*args, *parameter_set_output(codec, directory / PARAMETER_SETS)]


def read_keyframes(directory: Path, codec: str) -> Keyframes:
    """What the `keyframe_outputs` of one ffmpeg run (with -copyts) found."""
    return Keyframes(
        fresh=frozenset(_listed_pts(directory / FRESH)),
        cra=frozenset(_listed_pts(directory / SPLICE)),
        pictures=picture_formats(directory / PARAMETER_SETS, codec),
    )


def _listed_pts(listing: Path) -> list[int]:
    return [int(fields[2]) for fields in _entries(listing)]


def _entries(listing: Path) -> list[list[str]]:
    """The packet lines of a framecrc listing: stream, dts, pts, duration, size, hash, ..."""
    if not listing.is_file():
        return []
    lines = listing.read_text().splitlines()
    return [[f.strip() for f in line.split(",")] for line in lines if line and not line.startswith("#")]


def first_slice_is_idr(segment: str | Path, *, read_bytes: int = 1 << 20) -> bool:
    """Whether the first picture of an MPEG-TS segment's H.264 stream is an IDR (decodable on its own).

    A keyframe index can call a picture a keyframe that is not one (a broken index, or an open-GOP I-frame
    whose leading pictures refer to the segment before): a segment starting there shows garbage after a seek.
    """
    with open(segment, "rb") as f:
        data = f.read(read_bytes)
    payload, _ = _first_pes(data, TS_H264)
    for match in _START_CODE.finditer(payload):
        if match.end() >= len(payload):
            break
        nal_type = payload[match.end()] & 0x1F
        if nal_type == H264_IDR:
            return True
        if nal_type == H264_SLICE:
            return False
    return False


def splice_at_cra(piece: str | Path) -> bool:
    """Mark the CRA picture that starts an HEVC MPEG-TS piece as a BLA picture; False when it has none.

    A BLA is a CRA whose leading (RASL) pictures are gone, as they are from a piece that starts at it: the
    decoder outputs every picture it still holds, restarts its picture order count and activates the new
    parameter sets there (H.265 8.1.3, C.5.2.2), as it would at an IDR. Only the NAL unit type of each slice
    of the first picture changes (a slice header is the same for both types).
    """
    with open(piece, "r+b") as f:
        data = bytearray(f.read(FIRST_PES_BYTES))
        payload, where = _first_pes(data, TS_HEVC)
        changed = []
        for match in _START_CODE.finditer(payload):
            at = match.end()
            if at < len(payload) and (payload[at] >> 1) & 0x3F == HEVC_CRA:
                offset = _data_offset(where, at)
                data[offset] = (data[offset] & 0x81) | (HEVC_BLA_N_LP << 1)
                changed.append(offset)
        for offset in changed:
            f.seek(offset)
            f.write(data[offset : offset + 1])
    return bool(changed)


def _data_offset(where: list[tuple[int, int]], index: int) -> int:
    """Where byte `index` of a PES payload lies in the file, from its (payload index, file offset) pieces."""
    start, offset = max((s, o) for s, o in where if s <= index)
    return offset + index - start


def _first_pes(data: bytes | bytearray, stream_type: int) -> tuple[bytes, list[tuple[int, int]]]:
    """The payload of the first PES packet of the first video stream of `stream_type` in a transport stream,
    and where its pieces lie in `data`: (payload index, offset) for each TS packet's share."""
    pmt_pid = video_pid = None
    payload = bytearray()
    where: list[tuple[int, int]] = []
    started = False
    for offset in range(0, len(data) - TS_PACKET + 1, TS_PACKET):
        packet = data[offset : offset + TS_PACKET]
        if packet[0] != 0x47:
            return b"", []
        unit_start = bool(packet[1] & 0x40)
        pid = ((packet[1] & 0x1F) << 8) | packet[2]
        control = (packet[3] >> 4) & 3
        skip = 4 + (1 + packet[4] if control & 2 else 0)
        body = packet[skip:] if control & 1 else b""
        if not body:
            continue
        if pid == 0 and unit_start and pmt_pid is None:
            pmt_pid = _pat_first_program(body)
        elif pid == pmt_pid and unit_start and video_pid is None:
            video_pid = _pmt_pid(body, stream_type)
        elif pid == video_pid and video_pid is not None:
            if unit_start:
                if started:
                    break
                started = True
                header = 9 + body[8]  # the PES header
                skip, body = skip + header, body[header:]
            if started:
                where.append((len(payload), offset + skip))
                payload += body
    return bytes(payload), where


def _pat_first_program(body: bytes | bytearray) -> int | None:
    table = body[1 + body[0] :]
    length = ((table[1] & 0x0F) << 8) | table[2]
    entries = table[8 : 3 + length - 4]
    for i in range(0, len(entries) - 3, 4):
        if (entries[i] << 8) | entries[i + 1]:
            return ((entries[i + 2] & 0x1F) << 8) | entries[i + 3]
    return None


def _pmt_pid(body: bytes | bytearray, wanted: int) -> int | None:
    table = body[1 + body[0] :]
    length = ((table[1] & 0x0F) << 8) | table[2]
    info_length = ((table[10] & 0x0F) << 8) | table[11]
    i, end = 12 + info_length, 3 + length - 4
    while i + 4 < end:
        stream_type, pid = table[i], ((table[i + 1] & 0x1F) << 8) | table[i + 2]
        if stream_type == wanted:
            return pid
        i += 5 + (((table[i + 3] & 0x0F) << 8) | table[i + 4])
    return None
