"""What a sequence parameter set says the pictures are (H.264 and HEVC), read from its bytes.

Only the fields up to the picture's size, chroma format and bit depths are read (H.264 7.3.2.1.1, H.265
7.3.2.2.1). Every SPS a stream carries in band is read, so a stream that changes its pictures mid-way is
seen without decoding it; anything unreadable is reported as such, never guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_START_CODE = re.compile(b"\x00\x00\x01")
_EMULATION = re.compile(b"\x00\x00\x03")
# H.264 profiles whose SPS carry chroma format, bit depths and scaling lists.
_HIGH_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})
# (SubWidthC, SubHeightC) per chroma_format_idc: monochrome, 4:2:0, 4:2:2, 4:4:4.
_SUBSAMPLING = {0: (1, 1), 1: (2, 2), 2: (2, 1), 3: (1, 1)}


@dataclass(frozen=True)
class Picture:
    """The pictures an SPS describes: size after cropping, chroma_format_idc (1 is 4:2:0), bit depths."""

    width: int
    height: int
    chroma: int
    luma_bits: int
    chroma_bits: int

    def __str__(self) -> str:
        chroma = {0: "4:0:0", 1: "", 2: "4:2:2", 3: "4:4:4"}.get(self.chroma, "")
        bits = f"{self.luma_bits}-bit" if max(self.luma_bits, self.chroma_bits) > 8 else ""
        return " ".join(part for part in (f"{self.width}x{self.height}", bits, chroma) if part)


class Unreadable(ValueError):
    """An SPS that ends early or holds values no encoder writes."""


def pictures(raw: Path, codec: str) -> set[Picture]:
    """The distinct pictures the SPS NAL units of an Annex B file declare; Unreadable if any is not."""
    data = raw.read_bytes()
    starts = [m.end() for m in _START_CODE.finditer(data)]
    ends = [*starts[1:], len(data) + 3]
    units = {data[a : b - 3].rstrip(b"\x00") for a, b in zip(starts, ends, strict=True)}
    read = _h264 if codec == "h264" else _hevc
    return {read(_Bits(_EMULATION.sub(b"\x00\x00", unit))) for unit in units if unit}


def _h264(bits: _Bits) -> Picture:
    bits.skip(8)  # the NAL unit header
    profile = bits.u(8)
    bits.skip(16)  # constraint flags, level
    bits.ue()  # seq_parameter_set_id
    chroma, luma_bits, chroma_bits, separate = 1, 8, 8, False
    if profile in _HIGH_PROFILES:
        chroma = bits.ue()
        if chroma == 3:
            separate = bool(bits.u(1))
        luma_bits, chroma_bits = 8 + bits.ue(), 8 + bits.ue()
        bits.skip(1)  # qpprime_y_zero_transform_bypass_flag
        if bits.u(1):  # seq_scaling_matrix_present_flag
            for i in range(8 if chroma != 3 else 12):
                if bits.u(1):
                    _scaling_list(bits, 16 if i < 6 else 64)
    bits.ue()  # log2_max_frame_num_minus4
    poc_type = bits.ue()
    if poc_type == 0:
        bits.ue()
    elif poc_type == 1:
        bits.skip(1)
        bits.se(), bits.se()
        for _ in range(bits.ue()):
            bits.se()
    bits.ue()  # max_num_ref_frames
    bits.skip(1)  # gaps_in_frame_num_value_allowed_flag
    width_mbs, height_units = bits.ue() + 1, bits.ue() + 1
    frame_mbs_only = bits.u(1)
    if not frame_mbs_only:
        bits.skip(1)
    bits.skip(1)  # direct_8x8_inference_flag
    width, height = 16 * width_mbs, 16 * height_units * (2 - frame_mbs_only)
    if bits.u(1):  # frame_cropping_flag
        left, right, top, bottom = bits.ue(), bits.ue(), bits.ue(), bits.ue()
        sub_w, sub_h = (1, 1) if chroma == 0 or separate else _subsampling(chroma)
        width -= sub_w * (left + right)
        height -= sub_h * (2 - frame_mbs_only) * (top + bottom)
    return _picture(width, height, chroma, luma_bits, chroma_bits)


def _scaling_list(bits: _Bits, size: int) -> None:
    last = following = 8
    for _ in range(size):
        if following:
            following = (last + bits.se() + 256) % 256
        last = following or last


def _hevc(bits: _Bits) -> Picture:
    bits.skip(16)  # the NAL unit header
    bits.skip(4)  # sps_video_parameter_set_id
    sub_layers = bits.u(3)
    bits.skip(1)  # sps_temporal_id_nesting_flag
    bits.skip(88 + 8)  # general profile, tier and level
    present = [(bits.u(1), bits.u(1)) for _ in range(sub_layers)]
    if sub_layers:
        bits.skip(2 * (8 - sub_layers))
    for profile, level in present:
        bits.skip(88 * profile + 8 * level)
    bits.ue()  # sps_seq_parameter_set_id
    chroma = bits.ue()
    separate = chroma == 3 and bool(bits.u(1))
    width, height = bits.ue(), bits.ue()
    if bits.u(1):  # conformance_window_flag
        left, right, top, bottom = bits.ue(), bits.ue(), bits.ue(), bits.ue()
        sub_w, sub_h = (1, 1) if separate else _subsampling(chroma)
        width -= sub_w * (left + right)
        height -= sub_h * (top + bottom)
    return _picture(width, height, chroma, 8 + bits.ue(), 8 + bits.ue())


def _subsampling(chroma: int) -> tuple[int, int]:
    if chroma not in _SUBSAMPLING:
        raise Unreadable(f"chroma_format_idc {chroma}")
    return _SUBSAMPLING[chroma]


def _picture(width: int, height: int, chroma: int, luma_bits: int, chroma_bits: int) -> Picture:
    if width <= 0 or height <= 0 or chroma not in _SUBSAMPLING or not 8 <= max(luma_bits, chroma_bits) <= 16:
        raise Unreadable(f"a {width}x{height} picture, chroma format {chroma}, {luma_bits} bits")
    return Picture(width, height, chroma, luma_bits, chroma_bits)


class _Bits:
    """Reads an RBSP bit by bit: fixed-width fields and Exp-Golomb codes."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def u(self, n: int) -> int:
        if self.at + n > 8 * len(self.data):
            raise Unreadable("the parameter set ends early")
        value = 0
        for _ in range(n):
            byte = self.data[self.at >> 3]
            value = (value << 1) | ((byte >> (7 - (self.at & 7))) & 1)
            self.at += 1
        return value

    def skip(self, n: int) -> None:
        self.u(n)

    def ue(self) -> int:
        zeros = 0
        while not self.u(1):
            zeros += 1
            if zeros > 31:
                raise Unreadable("an Exp-Golomb code longer than 32 bits")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        code = self.ue()
        return (code + 1) // 2 if code & 1 else -(code // 2)
