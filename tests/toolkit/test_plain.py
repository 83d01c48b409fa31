"""What ffmpeg's decoders say about damage becomes words a person reads (`toolkit/plain`)."""

from __future__ import annotations

import pytest

from mediajobs.toolkit import plain


@pytest.mark.parametrize(
    "said",
    [
        # As ffmpeg 5.1 with -xerror ends a decode of a damaged source: the decoder's line is its last.
        "ffmpeg exited with 1: [aac @ 0x55d213752680] channel element 2.4 is not allocated",
        "ffmpeg exited with 1: [aac @ 0x55d2] Input buffer exhausted before END element found",
        "ffmpeg exited with 1: [aac @ 0x55d2] Number of bands (47) exceeds limit (40).",
        "ffmpeg exited with 1: [aac @ 0x55d2] Reserved bit set.",
        "ffmpeg exited with 1: [h264 @ 0x55d2] mb_type 41 in P slice too large at 12 7",
        "ffmpeg exited with 1: [h264 @ 0x55d2] out of range intra chroma pred mode",
        "ffmpeg exited with 1: [h264 @ 0x5] Invalid level prefix | [h264 @ 0x5] corrupted macroblock 3 4",
    ],
)
def test_a_decoder_that_stops_on_damage_says_the_file_is_damaged(said: str) -> None:
    assert plain.DAMAGE.search(said)
    assert plain.unreadable(said, tool="ffmpeg") == "the file is damaged"


def test_what_is_not_damage_is_not_called_damage() -> None:
    encoder = "ffmpeg exited with 1: [aac @ 0x55d2] Too many bits 8832.0 > 6144 per frame requested"
    assert not plain.DAMAGE.search(encoder)
    assert not plain.DAMAGE.search("ffmpeg exited with 1: Conversion failed!")
    # A file that is no media at all is said so, not "damaged at" a time.
    assert plain.unreadable("Invalid data found when processing input") == plain.DAMAGED
