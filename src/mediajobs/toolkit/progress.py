"""Progress from `ffmpeg -progress pipe:1`: key=value blocks turned into a monotonic fraction."""

from __future__ import annotations

from collections.abc import Callable

FractionCallback = Callable[[float], None]
UpdateCallback = Callable[[float, float | None], None]


def progress_args(period_s: float = 0.5) -> list[str]:
    """ffmpeg options that write machine-readable progress to stdout every `period_s`."""
    return ["-progress", "pipe:1", "-nostats", "-stats_period", f"{period_s:g}"]


class FfmpegProgress:
    """Feed it ffmpeg `-progress pipe:1` lines; calls on_update(fraction, speed) at the end of each block."""

    def __init__(self, total_s: float, on_update: UpdateCallback) -> None:
        self.total_s = total_s
        self.on_update = on_update
        self.fraction = 0.0
        self.out_time_s: float | None = None
        self.speed: float | None = None
        self._block: dict[str, str] = {}

    def feed(self, line: str) -> None:
        key, sep, value = line.strip().partition("=")
        if not sep:
            return
        key, value = key.strip(), value.strip()
        if key != "progress":
            self._block[key] = value
            return
        block, self._block = self._block, {}
        out_time = _out_time_s(block)
        if out_time is not None:
            self.out_time_s = out_time
        self.speed = _speed(block.get("speed"))
        if value == "end":
            self.fraction = 1.0
        elif out_time is not None and self.total_s > 0:
            # Never step back: a late block or a rounding wobble must not make the job's percent drop.
            self.fraction = max(self.fraction, min(1.0, out_time / self.total_s))
        self.on_update(self.fraction, self.speed)


def fraction_only(on_progress: FractionCallback | None) -> UpdateCallback:
    """Adapt a media function's `on_progress(fraction)` to FfmpegProgress's (fraction, speed) callback."""

    def update(fraction: float, speed: float | None) -> None:
        if on_progress is not None:
            on_progress(fraction)

    return update


def _out_time_s(block: dict[str, str]) -> float | None:
    # out_time_ms is microseconds despite its name (an old ffmpeg bug kept for compatibility).
    for key in ("out_time_us", "out_time_ms"):
        raw = block.get(key)
        if raw is not None:
            try:
                micros = int(raw)
            except ValueError:
                continue
            # The first blocks may say N/A or a huge negative number before any frame is out.
            return micros / 1_000_000 if micros >= 0 else None
    return _clock_s(block.get("out_time"))


def _clock_s(raw: str | None) -> float | None:
    if not raw or raw.startswith("-"):
        return None
    try:
        hours, minutes, seconds = raw.split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        return None


def _speed(raw: str | None) -> float | None:
    if not raw:
        return None
    try:
        return float(raw.rstrip("x"))
    except ValueError:
        return None
