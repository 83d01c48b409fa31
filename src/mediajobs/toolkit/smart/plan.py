"""Which source frames a smart render copies and which it re-encodes: a plan of spans over display order.

A GOP is copied, packets untouched, when none of its frames is removed or changed; every other kept frame
is re-encoded. Copied GOPs that follow each other form one copy span. An open GOP's leading frames (shown
before its keyframe, predicted from the GOP before) can only be copied along with that previous GOP: when it
is re-encoded or removed, they are re-encoded too, and the copy starts at the keyframe itself.

A copy that does not continue the one before it starts where the stream before it was cut or re-encoded, so
its keyframe must let a decoder start afresh (`starts`: an IDR, or an HEVC CRA marked as a BLA). After any
other keyframe (the I-frame of an H.264 open GOP) the decoder would carry on with the re-encoded part's frame
numbers, picture order counts and references, and show frames twice, out of order or not at all (issue 17:
a frame shown four times, fifteen lost). Such a GOP is re-encoded, and so is every one after it until a GOP
that can start a copy.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from mediajobs.toolkit.mask import Region
from mediajobs.toolkit.packets import VideoIndex

FrameRange = tuple[int, int]


@dataclass(frozen=True)
class Span:
    """Source frames [first, end) in display order, shown one after the other in the output."""

    copy: bool
    first: int
    end: int

    @property
    def frames(self) -> int:
        return self.end - self.first


def plan(
    index: VideoIndex,
    *,
    starts: Collection[int],
    removed: Sequence[FrameRange] = (),
    changed: Sequence[FrameRange] = (),
) -> list[Span]:
    """Spans covering every frame not in `removed`; GOPs touching `removed` or `changed` are re-encoded.

    `starts` are the GOPs (numbers) whose keyframe may begin a copy after a change; the first GOP always may,
    it begins the stream.
    """
    kept = [True] * index.count
    for first, end in removed:
        kept[first:end] = [False] * (end - first)
    dirty = list(kept)  # True where a frame is kept as it is
    for first, end in changed:
        dirty[first:end] = [False] * (end - first)
    # Per frame: None (removed), "e" (encode) or the number of the copy span it belongs to.
    label: list[int | str | None] = [None if not k else "e" for k in kept]
    copying, span_no = False, 0
    for g, gop in enumerate(index.gops):
        untouched = all(dirty[gop.first : gop.end])
        if untouched and copying:
            label[gop.first : gop.end] = [span_no] * (gop.end - gop.first)
        elif untouched and (g == 0 or g in starts):
            span_no += 1
            label[gop.key : gop.end] = [span_no] * (gop.end - gop.key)
        copying = untouched and (copying or g == 0 or g in starts)
    spans: list[Span] = []
    for p, mark in enumerate(label):
        if mark is None:
            continue
        if p and label[p - 1] == mark:
            spans[-1] = Span(spans[-1].copy, spans[-1].first, p + 1)
        else:
            spans.append(Span(mark != "e", p, p + 1))
    return spans


def removed_frames(index: VideoIndex, ranges: Sequence[tuple[float, float]]) -> list[FrameRange]:
    """Display frames inside merged `ranges` (seconds, end exclusive): a frame goes when its time does."""
    return [(index.frame_at(start), index.frame_at(end)) for start, end in ranges]


def masked_frames(index: VideoIndex, regions: Sequence[Region]) -> list[FrameRange]:
    """Display frames the mask filter touches: times from `start` to `end` inclusive (`None`: the end)."""
    # frame_at allows a quarter frame below each bound, far more than the filter's float rounding: a frame
    # on the edge of a region's time counts as masked rather than risk copying one the filter masks.
    half = 0.5 / float(index.fps)
    return [
        (index.frame_at(r.start), index.count if r.end is None else index.frame_at(r.end + half))
        for r in regions
    ]


def kept_seconds(index: VideoIndex, spans: Sequence[Span], duration: float) -> list[tuple[float, float]]:
    """The source times the output keeps (seconds), spans that follow each other in the source merged."""
    kept: list[tuple[float, float]] = []
    previous_end = -1
    for span in spans:
        end = duration if span.end >= index.count else index.time_s(span.end)
        if span.first == previous_end:
            kept[-1] = (kept[-1][0], end)
        else:
            kept.append((index.time_s(span.first), end))
        previous_end = span.end
    return kept
