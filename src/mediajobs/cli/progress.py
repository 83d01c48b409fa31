"""Live progress on the terminal: one redrawn line on a TTY, a line per change otherwise."""

from __future__ import annotations

import shutil
import sys
import time
from typing import Any, TextIO

BAR_WIDTH = 24
PLAIN_MIN_INTERVAL_S = 1.0
PLAIN_PROGRESS_STEP = 10.0


def format_duration(seconds: float) -> str:
    """`42s`, `3:07`, `1:02:03`."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}" if minutes else f"{secs}s"


def format_bytes(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def bar(percent: float, width: int = BAR_WIDTH) -> str:
    filled = int(width * min(max(percent, 0.0), 100.0) / 100)
    return "[" + "#" * filled + "." * (width - filled) + "]"


class Line:
    """One status line on a stream: redrawn in place on a TTY, appended otherwise."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._drawn = 0

    def draw(self, text: str) -> None:
        if not self.tty:
            print(text, file=self.stream, flush=True)
            return
        width = shutil.get_terminal_size().columns - 1
        text = text[:width]
        self.stream.write("\r" + text + " " * max(0, self._drawn - len(text)))
        self.stream.flush()
        self._drawn = len(text)

    def done(self) -> None:
        """End the redrawn line so that later output starts on a fresh one."""
        if self.tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
        self._drawn = 0


class JobProgress:
    """Renders a job's state, stage, percent and ETA as the job changes."""

    def __init__(self, line: Line | None = None) -> None:
        self.line = line or Line()
        self._shown: tuple[str, str, str, float] | None = None
        self._shown_at = 0.0

    def render(self, job: dict[str, Any]) -> str:
        percent = float(job.get("progress") or 0.0)
        parts = [str(job.get("kind", "job")), f"{job['state']:<9}", bar(percent), f"{percent:5.1f}%"]
        if job.get("stage"):
            parts.append(str(job["stage"]))
        eta = job.get("eta_seconds")
        if eta is not None and job["state"] == "running":
            parts.append(f"ETA {format_duration(float(eta))}")
        if (job.get("attempt") or 1) > 1:
            parts.append(f"(attempt {job['attempt']}/{job.get('max_attempts', '?')})")
        return "  ".join(parts)

    def update(self, job: dict[str, Any]) -> None:
        key = (str(job["id"]), str(job["state"]), str(job.get("stage") or ""), float(job.get("progress") or 0.0))
        if key == self._shown or not (self.line.tty or self._worth_a_plain_line(key)):
            return
        if self._shown is not None and self._shown[0] != key[0]:
            self.line.done()
        self.line.draw(self.render(job))
        self._shown, self._shown_at = key, time.monotonic()

    def _worth_a_plain_line(self, key: tuple[str, str, str, float]) -> bool:
        """Without a TTY: every new job and state; other changes at most once a second, ten points apart."""
        shown = self._shown
        if shown is None or shown[:2] != key[:2]:
            return True
        if time.monotonic() - self._shown_at < PLAIN_MIN_INTERVAL_S:
            return False
        return shown[2] != key[2] or key[3] - shown[3] >= PLAIN_PROGRESS_STEP

    def close(self) -> None:
        self.line.done()


class TransferProgress:
    """Bytes sent so far, with rate and ETA; a line per ten percent without a TTY."""

    def __init__(self, label: str, total_bytes: int, line: Line | None = None) -> None:
        self.label = label
        self.total_bytes = total_bytes
        self.sent_bytes = 0
        self.line = line or Line()
        self._started = time.monotonic()
        self._drawn_at = 0.0
        self._drawn_step = -1

    def advance(self, n_bytes: int) -> None:
        self.sent_bytes += n_bytes
        now = time.monotonic()
        finished = self.sent_bytes >= self.total_bytes
        percent = 100.0 * self.sent_bytes / self.total_bytes if self.total_bytes else 100.0
        if self.line.tty:
            if finished or now - self._drawn_at >= 0.1:
                self.line.draw(self.render(percent, now))
                self._drawn_at = now
        elif int(percent // 10) != self._drawn_step:
            self._drawn_step = int(percent // 10)
            self.line.draw(self.render(percent, now))

    def render(self, percent: float, now: float) -> str:
        elapsed = max(now - self._started, 1e-6)
        rate = self.sent_bytes / elapsed
        parts = [
            f"upload {self.label}", bar(percent), f"{percent:5.1f}%",
            f"{format_bytes(self.sent_bytes)}/{format_bytes(self.total_bytes)}", f"{format_bytes(rate)}/s",
        ]
        if rate > 0 and self.sent_bytes < self.total_bytes:
            parts.append(f"ETA {format_duration((self.total_bytes - self.sent_bytes) / rate)}")
        return "  ".join(parts)

    def close(self) -> None:
        self.line.done()
