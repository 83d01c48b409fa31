"""`mediajobs media show` says what made a derived asset, the sound a mask changed included."""

from __future__ import annotations

from mediajobs.cli.media_ops import describe_operation


def test_a_mask_is_described_with_its_regions_and_what_it_did_to_the_sound() -> None:
    region = {"x": 10, "y": 20, "w": 100, "h": 50, "start": 2.0, "end": 5.0, "style": "black"}
    ranges = [{"start": 1.0, "end": 2.5, "style": "bleep"}, {"start": 61.0, "end": 62.0, "style": "mute"}]
    described = describe_operation(
        {"type": "mask", "regions": [region], "audio": "keep", "audio_ranges": ranges}
    )
    assert described == (
        "mask: 10,20 100x50 from 0:02 to 0:05, black; sound bleeped from 0:01 to 0:02.5; "
        "sound muted from 1:01 to 1:02"
    )
    assert describe_operation({"type": "mask", "regions": [], "audio": "mute"}) == "mask: sound muted"
    assert describe_operation({"type": "mask", "regions": [], "audio": "remove"}) == "mask: sound removed"
    # A mask made before the sound options existed says what it said then.
    assert (
        describe_operation({"type": "mask", "regions": [region]})
        == "mask: 10,20 100x50 from 0:02 to 0:05, black"
    )
