"""Progress of a smart render: each ffmpeg step weighted by the work it does, so re-encoding dominates.

The weights are costs per second of media in units of one second of 1080p x264 veryfast encoding, from
`bench/smartrender.py` on a 10-minute 1080p30 source (re-encoding took 2.6 s per second of video on the
shared 2-core machine, the copy pass 0.0045 s, the join 0.009 s, encoding a cut's sound 0.03 s). Encoding
scales with the picture size, copying and joining with the bytes moved, which grow with the picture too.
Each step's own fraction comes from ffmpeg's `-progress` as usual.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mediajobs.toolkit.packets import VideoIndex
from mediajobs.toolkit.smart.plan import Span

FULL_HD = 1920 * 1080
ENCODE_PER_S = 1.0
# A re-encoded span is decoded from the keyframe before it: up to two GOPs of decoding first.
DECODE_PER_S = 0.05
COPY_PER_S = 0.002
JOIN_PER_S = 0.0035
AUDIO_PER_S = 0.012
# Starting ffmpeg and opening the source.
RUN_S = 0.1


class Monotonic:
    """Forwards fractions to `on_progress`, never one below what it already reported."""

    def __init__(self, on_progress: Callable[[float], None]) -> None:
        self.on_progress = on_progress
        self.value = 0.0

    def __call__(self, fraction: float) -> None:
        fraction = max(0.0, min(1.0, fraction))
        if fraction > self.value:
            self.value = fraction
            self.on_progress(fraction)

    def rest(self) -> Callable[[float], None]:
        """A callback for work that starts over (a fallback): its 0..1 fills what is left."""
        base = self.value
        return lambda fraction: self(base + (1.0 - base) * fraction)


class Work:
    """Weights for the steps of a render: the copy pass, one per span (copy spans cost nothing there,
    the copy pass did them), then the join."""

    def __init__(self, index: VideoIndex, spans: Sequence[Span], *, audio_s: float) -> None:
        fps = float(index.fps)
        size = max(0.02, index.stream.width * index.stream.height / FULL_HD)
        copied_s = sum(s.frames for s in spans if s.copy) / fps
        self.costs = [RUN_S + copied_s * size * COPY_PER_S]
        lead_in_s = 2 * index.longest_gop_s * size * DECODE_PER_S
        self.costs += [
            0.0 if s.copy else RUN_S + lead_in_s + s.frames / fps * size * ENCODE_PER_S for s in spans
        ]
        shown_s = sum(s.frames for s in spans) / fps
        self.costs.append(RUN_S + shown_s * size * JOIN_PER_S + audio_s * AUDIO_PER_S)
        self.total = sum(self.costs)

    def step(self, n: int, progress: Monotonic | None) -> Callable[[float], None] | None:
        """A callback taking step `n`'s own fraction and reporting the whole render's."""
        if progress is None:
            return None
        done, cost, last = sum(self.costs[:n]), self.costs[n], n == len(self.costs) - 1

        def report(fraction: float) -> None:
            if last and fraction >= 1.0:
                progress(1.0)
            else:
                progress((done + max(0.0, min(1.0, fraction)) * cost) / self.total)

        return report
