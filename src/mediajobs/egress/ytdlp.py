"""URL imports through yt-dlp: progress, a byte cap of our own, failures sorted into stable codes.

yt-dlp runs through the egress guard: `--proxy`, the proxy variables, and (where namespaces exist) a jail
with no other way out. Only http(s) and natively downloaded HLS formats are chosen, and ffmpeg is never its
downloader (see `mediajobs.egress.ytdlp_main`), so every byte comes through the proxy's checks and caps.
"""

from __future__ import annotations

import json
import mimetypes
import re
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mediajobs import process
from mediajobs.egress import Guard, Policy, urlcheck
from mediajobs.egress.ytdlp_main import REFUSAL
from mediajobs.errors import (
    JobCancelled,
    MediajobsError,
    ProcessFailed,
    SourceTemporarilyUnreachable,
    SourceUnreachable,
    TooLarge,
    UnsupportedMedia,
)
from mediajobs.toolkit.probe import probe
from mediajobs.toolkit.sniff import sniff_file

DownloadProgress = Callable[[int, int | None, float | None, float | None], None]

PROGRESS_MARK = "[mediajobs:progress] "
DONE_MARK = "[mediajobs:done] "
# Direct files first; "http_dash_segments" also starts with "http", so DASH is excluded by name. Then the best
# video+audio pair, then anything, always over http(s) or HLS: no ftp, rtmp, f4m, DASH, websockets...
WEB = "[protocol~='^(https?|m3u8(_native)?)$']"
FORMAT = f"b[protocol^=http][protocol!*=dash]/bv*{WEB}+ba{WEB}/b{WEB}"
CONTENT_TYPES = {
    "mp4": "video/mp4",
    "m4v": "video/mp4",
    "mov": "video/quicktime",
    "webm": "video/webm",
    "mkv": "video/x-matroska",
    "ts": "video/mp2t",
    "m4a": "audio/mp4",
    "mp3": "audio/mpeg",
    "ogg": "audio/ogg",
    "opus": "audio/ogg",
    "wav": "audio/wav",
}


@dataclass(frozen=True)
class Downloaded:
    """A file yt-dlp fetched into the destination directory."""

    path: Path
    size: int
    filename: str
    content_type: str
    title: str


class _Watch:
    """The cancel signal process.run polls: the job's own cancel, or our byte cap being crossed."""

    def __init__(self, dest_dir: Path, max_bytes: int, outer: process.CancelSignal | None) -> None:
        self.dest_dir, self.max_bytes, self.outer = dest_dir, max_bytes, outer
        self.seen_bytes = 0
        self.announced_bytes: int | None = None
        self.too_large = False
        self._next_scan = 0.0

    def is_set(self) -> bool:
        now = time.monotonic()
        if now >= self._next_scan:
            # Files on disk catch what progress lines may not report (ffmpeg-driven HLS, merges).
            self._next_scan = now + 0.25
            self.seen_bytes = max(self.seen_bytes, _largest_file(self.dest_dir))
        if self.seen_bytes > self.max_bytes:
            self.too_large = True
        return self.too_large or (self.outer is not None and self.outer.is_set())


def download(
    url: str,
    dest_dir: str | Path,
    *,
    max_bytes: int,
    guard: Guard | None,
    on_progress: DownloadProgress | None = None,
    timeout_s: float | None = None,
) -> Downloaded:
    """Download the media at `url` into `dest_dir` through `guard`, refusing anything over `max_bytes`.

    `guard=None` runs yt-dlp with the machine's own network (the benchmark's baseline only).

    `on_progress(downloaded_bytes, total_bytes, speed_bps, eta_s)` is called about twice a second; the total,
    speed and ETA are None while yt-dlp does not know them, and bytes keep growing across the parts of a
    video+audio pair.
    """
    dest_dir = Path(dest_dir).resolve()
    dest_dir.mkdir(parents=True, exist_ok=True)
    before = set(dest_dir.iterdir())
    policy = guard.policy if guard is not None else Policy(allow_private=True)
    url = urlcheck.check_url(url, policy=policy)
    argv = _args(url, dest_dir, guard.proxy_url if guard else None)
    env: dict[str, str] = {}
    if guard is not None:
        argv, env = guard.wrap(argv)
    watch = _Watch(dest_dir, max_bytes, process.current_cancel.get())
    reader = _OutputReader(watch, on_progress)
    try:
        done = process.run(
            argv,
            on_stdout=reader.feed,
            timeout_s=timeout_s,
            cancel=watch,
            check=False,
            cwd=dest_dir,
            env=env,
            network=guard.network if guard is not None else True,
            untrusted=True,
        )
        # What the proxy saw outranks what yt-dlp makes of it: a refused key or fragment is the cause.
        if guard is not None and (refused := guard.failure()) is not None:
            raise refused
        if done.returncode != 0:
            error = classify(done.stderr_tail)
            if guard is not None and (unreachable := guard.unreachable()) is not None:
                error = unreachable
            raise error
        return _result(reader, dest_dir, max_bytes)
    except JobCancelled as exc:
        _remove_new(dest_dir, before)
        if watch.too_large:
            size = f"{watch.announced_bytes} bytes" if watch.announced_bytes else "larger than that"
            raise TooLarge(f"the source is over the {max_bytes} byte limit ({size})") from exc
        raise
    except BaseException:
        _remove_new(dest_dir, before)
        raise


def _args(url: str, dest_dir: Path, proxy_url: str | None) -> list[str]:
    # yt-dlp passes --proxy to every request it makes, HLS fragments and keys included.
    proxy = ["--proxy", proxy_url] if proxy_url else []
    return [
        sys.executable, "-m", "mediajobs.egress.ytdlp_main",
        *proxy, "--downloader", "m3u8:native",
        "--ignore-config", "--no-cache-dir", "--no-playlist", "--playlist-items", "1",
        # --print implies --quiet; --no-quiet keeps yt-dlp's notes visible for the error message.
        "--no-quiet", "--no-warnings", "--newline", "--no-color",
        "--progress", "--progress-delta", "0.5",
        "--progress-template", f"download:{PROGRESS_MARK}%(progress)j",
        "--print", f"after_move:{DONE_MARK}%(.{{filepath,title,ext}})j",
        "--format", FORMAT,
        # A missing fragment must fail the import, not leave a silently truncated file. No --max-filesize:
        # yt-dlp applies it to each HLS fragment and skips the big ones; _Watch enforces the cap instead.
        "--abort-on-unavailable-fragments",
        "--socket-timeout", "30", "--retries", "3", "--fragment-retries", "3",
        "--paths", str(dest_dir), "--paths", f"temp:{dest_dir}",
        "--output", "source.%(ext)s",
        "--", url,
    ]  # fmt: skip


class _OutputReader:
    """Parses yt-dlp's stdout: progress JSON, the final file, and plain messages kept for diagnosis."""

    def __init__(self, watch: _Watch, on_progress: DownloadProgress | None) -> None:
        self.watch, self.on_progress = watch, on_progress
        self.result: dict[str, Any] | None = None
        self.messages: deque[str] = deque(maxlen=20)
        self._finished: dict[str, int] = {}

    def feed(self, line: str) -> None:
        try:
            if line.startswith(DONE_MARK):
                self.result = json.loads(line[len(DONE_MARK) :])
                return
            if line.startswith(PROGRESS_MARK):
                self._progress(json.loads(line[len(PROGRESS_MARK) :]))
                return
        except ValueError:  # a line cut short; progress comes again and a lost result is reported below
            pass
        if line.strip():
            self.messages.append(line)

    def _progress(self, data: dict[str, Any]) -> None:
        current = int(data.get("downloaded_bytes") or 0)
        exact = int(data.get("total_bytes") or 0)
        total = exact or int(data.get("total_bytes_estimate") or 0)
        known_total: int | None
        if data.get("status") == "finished":
            self._finished[str(data.get("filename"))] = current
            downloaded = known_total = sum(self._finished.values())
        else:
            # A video+audio pair is two downloads in a row: count what the finished parts already brought.
            done_before = sum(self._finished.values())
            downloaded = done_before + current
            known_total = done_before + total if total else None
            # A size announced up front fails the import at once, not after the whole download.
            if exact:
                self.watch.announced_bytes = done_before + exact
                self.watch.seen_bytes = max(self.watch.seen_bytes, done_before + exact)
        self.watch.seen_bytes = max(self.watch.seen_bytes, downloaded)
        if self.on_progress is not None:
            self.on_progress(downloaded, known_total, data.get("speed"), data.get("eta"))


def _result(reader: _OutputReader, dest_dir: Path, max_bytes: int) -> Downloaded:
    if reader.result is None:
        said = " | ".join(reader.messages)
        raise UnsupportedMedia(f"yt-dlp downloaded nothing: {said[-300:] or 'no output'}")
    path = Path(reader.result["filepath"])
    if not path.is_file() or dest_dir not in path.resolve().parents:
        raise ProcessFailed(f"yt-dlp reported a file that is not in the download directory: {path}")
    size = path.stat().st_size
    if size > max_bytes:
        raise TooLarge(f"the source is over the {max_bytes} byte limit ({size} bytes)")
    ext = str(reader.result.get("ext") or path.suffix.lstrip("."))
    # The generic extractor names anything it cannot place "unknown_video": the first bytes say what it is,
    # then a probe tells a real file from a damaged one.
    if (refusal := sniff_file(path).import_refusal) is not None:
        raise UnsupportedMedia(refusal)
    probe(path)
    title = str(reader.result.get("title") or path.stem)
    safe = re.sub(r"[\x00-\x1f/\\]+", "_", title).strip(" .")[:150] or "download"
    content_type = CONTENT_TYPES.get(ext) or mimetypes.guess_type(f"x.{ext}")[0] or "application/octet-stream"
    return Downloaded(path=path, size=size, filename=f"{safe}.{ext}", content_type=content_type, title=title)


# First match wins, tried against yt-dlp's last ERROR line.
_RULES: list[tuple[str, type[MediajobsError], str]] = [
    (r"HTTP Error (404|410)", SourceUnreachable, "the source was not found"),
    (r"HTTP Error (429|5\d\d)", SourceTemporarilyUnreachable, "the source's server is failing"),
    (r"HTTP Error 4\d\d", SourceUnreachable, "the source's server refused the request"),
    (r"Temporary failure in name resolution", SourceTemporarilyUnreachable, "DNS is not answering"),
    (r"Failed to resolve|Name or service not known|getaddrinfo failed", SourceUnreachable, "no such host"),
    (r"Connection refused", SourceUnreachable, "connection refused"),
    (r"timed out|Read timeout|Connection reset", SourceTemporarilyUnreachable, "network error"),
    (r"Unsupported URL", UnsupportedMedia, "no video or audio found at the URL"),
    (r"No video formats found|Requested format is not available", UnsupportedMedia, "no usable format"),
    (r"Video unavailable|Private video|has been removed", SourceUnreachable, "the video is not available"),
    (r"fragment \d+ not found", SourceUnreachable, "part of the stream is missing on the server"),
    (r"downloaded file is empty", SourceUnreachable, "the source sent no data"),
]


def classify(stderr_tail: str) -> MediajobsError:
    """Turn yt-dlp's complaint into an error with a stable code and a message a user can act on."""
    errors = [line for line in stderr_tail.splitlines() if line.startswith("ERROR:")]
    # yt-dlp goes on after our refusal to use ffmpeg as a downloader and blames ffmpeg's exit code last.
    if refusal := next((line for line in errors if REFUSAL in line), None):
        return UnsupportedMedia(f"the stream needs a download method imports do not use: {_short(refusal)}")
    detail = _short(errors[-1] if errors else process.last_words(stderr_tail))
    for pattern, error, summary in _RULES:
        if re.search(pattern, detail):
            return error(f"{summary}: {detail}")
    return ProcessFailed(f"yt-dlp failed: {detail}")


def _short(line: str) -> str:
    # yt-dlp repeats the cause in "(caused by ...)"; the first half says it all.
    return line.removeprefix("ERROR: ").split(" (caused by ")[0][:300]


def _largest_file(directory: Path) -> int:
    try:
        return max((p.stat().st_size for p in directory.iterdir() if p.is_file()), default=0)
    except FileNotFoundError:  # a part file renamed between listing and stat
        return 0


def _remove_new(directory: Path, before: set[Path]) -> None:
    for path in directory.iterdir():
        if path not in before and path.is_file():
            path.unlink(missing_ok=True)
