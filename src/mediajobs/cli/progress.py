"""Following jobs and media live on the terminal, and reporting how they ended.

Progress goes to stderr (one redrawn line on a TTY, a line per change otherwise); results go to stdout.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from datetime import UTC, datetime
from typing import Any, TextIO

import click

from mediajobs.cli.apiclient import ApiClient
from mediajobs.jobs import states
from mediajobs.media import states as media_states
from mediajobs.units import format_bytes

BAR_WIDTH = 20
PLAIN_MIN_INTERVAL_S = 1.0
PLAIN_PROGRESS_STEP = 10.0
MEDIA_POLL_INTERVAL_S = 1.0


def format_duration(seconds: float) -> str:
    """`42s`, `3:07`, `1:02:03`."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}" if minutes else f"{secs}s"


def format_took(seconds: float) -> str:
    return f"{seconds:.1f}s" if seconds < 10 else format_duration(seconds)


def age(stamp: str | None) -> str:
    moment = parse_time(stamp)
    if moment is None:
        return "-"
    seconds = max(0.0, (datetime.now(UTC) - moment).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2))


def parse_time(stamp: str | None) -> datetime | None:
    if not stamp:
        return None
    moment = datetime.fromisoformat(stamp)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def describe_error(error: Any) -> str:
    if isinstance(error, dict):
        return f"{error.get('code', 'error')}: {error.get('message', '')}".rstrip(": ")
    return str(error)


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
        eta = job.get("eta_seconds")
        if eta is not None and job["state"] == states.RUNNING:
            parts.append(f"ETA {format_duration(float(eta))}")
        if job.get("stage"):
            parts.append(str(job["stage"]))
        if (job.get("attempt") or 1) > 1:
            parts.append(f"(attempt {job['attempt']}/{job.get('max_attempts', '?')})")
        return "  ".join(parts)

    def update(self, job: dict[str, Any]) -> None:
        key = (
            str(job["id"]),
            str(job["state"]),
            str(job.get("stage") or ""),
            float(job.get("progress") or 0.0),
        )
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
    """Bytes sent (or received) so far, with rate and ETA; a line per ten percent without a TTY. A total of 0
    is unknown: bytes and rate, no bar."""

    def __init__(
        self, label: str, total_bytes: int, line: Line | None = None, *, verb: str = "upload"
    ) -> None:
        self.label = label
        self.verb = verb
        self.total_bytes = total_bytes
        self.sent_bytes = 0
        self.line = line or Line()
        self._started = time.monotonic()
        self._drawn_at = 0.0
        self._drawn_step = -1
        self._resumed_at: int | None = None  # what the server had when this run began (a resumed upload)

    def at(self, position: int) -> None:
        """The server has `position` bytes (a resumed upload starts past zero, a cut one may step back)."""
        if self._resumed_at is None:
            self._resumed_at = position
        self.advance(position - self.sent_bytes)

    def advance(self, n_bytes: int) -> None:
        self.sent_bytes += n_bytes
        now = time.monotonic()
        finished = bool(self.total_bytes) and self.sent_bytes >= self.total_bytes
        percent = 100.0 * self.sent_bytes / self.total_bytes if self.total_bytes else 0.0
        # Without a total, a plain line per 10 MiB stands in for a line per ten percent.
        step = int(percent // 10) if self.total_bytes else self.sent_bytes // (10 * 1024 * 1024)
        if self.line.tty:
            if finished or now - self._drawn_at >= 0.1:
                self.line.draw(self.render(percent, now))
                self._drawn_at = now
        elif step != self._drawn_step:
            self._drawn_step = step
            self.line.draw(self.render(percent, now))

    def render(self, percent: float, now: float) -> str:
        elapsed = max(now - self._started, 1e-6)
        rate = max(0, self.sent_bytes - (self._resumed_at or 0)) / elapsed
        if not self.total_bytes:
            return "  ".join(
                [f"{self.verb} {self.label}", format_bytes(self.sent_bytes), f"{format_bytes(rate)}/s"]
            )
        parts = [
            f"{self.verb} {self.label}",
            bar(percent),
            f"{percent:5.1f}%",
            f"{format_bytes(self.sent_bytes)}/{format_bytes(self.total_bytes)}",
            f"{format_bytes(rate)}/s",
        ]
        if rate > 0 and self.sent_bytes < self.total_bytes:
            parts.append(f"ETA {format_duration((self.total_bytes - self.sent_bytes) / rate)}")
        return "  ".join(parts)

    def close(self) -> None:
        self.line.done()


def follow_job(client: ApiClient, job: dict[str, Any], display: JobProgress) -> dict[str, Any]:
    """Show the job live until it ends; the job as it ended. Ctrl-C stops watching, not the job."""
    display.update(job)
    if job["state"] in states.TERMINAL:
        return job
    try:
        for job in client.follow(job["id"]):  # noqa: B020 - the last one seen is the answer
            display.update(job)
    except KeyboardInterrupt:
        display.close()
        click.echo(
            f"stopped watching; job {job['id']} goes on (`mediajobs jobs cancel {job['id']}` stops it)",
            err=True,
        )
        raise click.exceptions.Exit(130) from None
    return job


def wait_for_job(client: ApiClient, job: dict[str, Any]) -> dict[str, Any]:
    display = JobProgress()
    try:
        return follow_job(client, job, display)
    finally:
        display.close()


def wait_for_media(client: ApiClient, media: dict[str, Any], job: dict[str, Any]) -> dict[str, Any]:
    """Follow the import job, then each pipeline job the asset gains, until the asset is ready or failed."""
    display = JobProgress()
    followed: set[str] = set()
    try:
        while True:
            if job["id"] not in followed:
                followed.add(job["id"])
                follow_job(client, job, display)
            media = client.media(media["id"])
            pending = [job_id for job_id in media.get("jobs") or [] if job_id not in followed]
            if pending:
                job = client.job(pending[0])
            elif media["state"] in media_states.SETTLED:
                return media
            else:
                time.sleep(MEDIA_POLL_INTERVAL_S)
    except KeyboardInterrupt:
        display.close()
        click.echo(f"stopped watching; media {media['id']} goes on", err=True)
        raise click.exceptions.Exit(130) from None
    finally:
        display.close()


def report_job(job: dict[str, Any], *, as_json: bool, expect: str = states.SUCCEEDED) -> None:
    """The job's end on stdout, its failure on stderr with exit code 1."""
    if as_json:
        print_json(job)
    elif job["state"] == states.SUCCEEDED:
        started, finished = parse_time(job.get("started_at")), parse_time(job.get("finished_at"))
        took = f" in {format_took((finished - started).total_seconds())}" if started and finished else ""
        click.echo(f"job {job['id']} succeeded{took}")
        if job.get("result") is not None:
            result = job["result"]
            click.echo(
                "result: "
                + (json.dumps(result, indent=2) if isinstance(result, dict | list) else str(result))
            )
    elif job["state"] == expect:
        click.echo(f"job {job['id']} {job['state']}")
    if job["state"] != expect:
        error = describe_error(job["error"]).removeprefix(f"{job['state']}: ") if job.get("error") else ""
        click.echo(f"job {job['id']} {job['state']}{': ' + error if error else ''}", err=True)
        raise click.exceptions.Exit(1)


def report_media(client: ApiClient, media: dict[str, Any], *, as_json: bool) -> None:
    """The asset's end on stdout (with its absolute HLS master URL), a failure on stderr with exit code 1."""
    if as_json:
        print_json(media)
    elif media["state"] == "ready":
        click.echo(f"media {media['id']} ready")
        if media.get("hls"):
            click.echo(f"hls master: {client.absolute_url(media['hls']['master_url'])}")
        if media.get("thumbnail_url"):
            click.echo(f"thumbnail: {client.absolute_url(media['thumbnail_url'])}")
    if media["state"] != "ready":
        error = f": {describe_error(media['error'])}" if media.get("error") else ""
        click.echo(f"media {media['id']} {media['state']}{error}", err=True)
        raise click.exceptions.Exit(1)
