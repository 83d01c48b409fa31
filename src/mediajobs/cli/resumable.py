"""`mediajobs media upload`: a tus 1.0.0 client that rides out dropped connections and resumes earlier runs.

The upload URL of each file is remembered in the user's state directory (`$XDG_STATE_HOME/mediajobs`, else
`~/.local/state/mediajobs`), keyed by the API, the file's absolute path, size and modification time; a later
run for the same unchanged file asks the server how much it has (HEAD) and sends only the rest.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from mediajobs.cli.apiclient import ApiClient, ApiUnreachable, ClientError, guess_content_type, problem_from

TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = "application/offset+octet-stream"
READ_BYTES = 1024 * 1024
FIRST_PATCH_BYTES = 1024 * 1024
# Waits between tries after a dropped connection (or a moment's refusal); reset whenever bytes got through.
BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
RETRYABLE = frozenset({409, 423, 429, 500, 502, 503, 504})


def state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "mediajobs"


class Remembered:
    """Upload URLs of unfinished uploads, by file (a small JSON file, rewritten atomically)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or state_dir() / "uploads.json"

    @staticmethod
    def key(api_url: str, file: Path) -> str:
        st = file.stat()
        text = f"{api_url}|{file.resolve()}|{st.st_size}|{st.st_mtime_ns}"
        return hashlib.sha256(text.encode()).hexdigest()

    def _load(self) -> dict[str, Any]:
        try:
            found = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return found if isinstance(found, dict) else {}

    def get(self, key: str) -> dict[str, Any] | None:
        entry = self._load().get(key)
        return entry if isinstance(entry, dict) and isinstance(entry.get("url"), str) else None

    def put(self, key: str, entry: dict[str, Any] | None) -> None:
        entries = self._load()
        if entry is None:
            entries.pop(key, None)
        else:
            entries[key] = entry
        with contextlib.suppress(OSError):  # remembering is a convenience; the upload goes on without it
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            temp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
            temp.write_text(json.dumps(entries, indent=1))
            temp.replace(self.path)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class ResumableUpload:
    """One file to the API's /api/v1/uploads, resumed where the server stopped, whatever stopped it."""

    def __init__(
        self,
        client: ApiClient,
        file: Path,
        *,
        resume: bool = True,
        remembered: Remembered | None = None,
        on_progress: Callable[[int], None] | None = None,  # bytes of the file the server has (or is sent)
        backoff_s: tuple[float, ...] = BACKOFF_S,
    ) -> None:
        self.client = client
        self.file = file
        self.size = file.stat().st_size
        self.resume = resume
        self.remembered = remembered or Remembered()
        self.key = Remembered.key(client.base_url, file)
        self.on_progress = on_progress or (lambda _: None)
        self.backoff_s = backoff_s
        self.url = ""
        self.media_id = ""
        self.offset = 0

    def run(self) -> str:
        """Upload the file; the id of the asset it became."""
        if not (self.resume and self._resumed()):
            self._create()
        self.on_progress(self.offset)
        tries = 0
        while self.offset < self.size:
            before = self.offset
            try:
                self._patch()
            except (httpx.TransportError, _Retry) as exc:
                self._refresh_offset()
                self.on_progress(self.offset)
                tries = 0 if self.offset > before else tries + 1
                if tries > len(self.backoff_s):
                    raise ApiUnreachable(
                        f"the upload keeps failing ({exc}); run the command again to resume"
                    ) from None
                time.sleep(self.backoff_s[min(tries, len(self.backoff_s)) - 1] if tries else 0)
        self.remembered.put(self.key, None)
        return self.media_id

    def _resumed(self) -> bool:
        entry = self.remembered.get(self.key)
        if entry is None:
            return False
        self.url, self.media_id = entry["url"], str(entry.get("media_id", ""))
        try:
            answer = self.client.send("HEAD", self.url, headers=TUS)
        except httpx.TransportError:
            return True  # the server is not there right now: the loop retries from the remembered offset
        if answer.status_code in (404, 410):
            self.remembered.put(self.key, None)  # expired or removed on the server: start again
            return False
        if answer.status_code != 200 or "upload-offset" not in answer.headers:
            raise problem_from(answer)
        self.offset = int(answer.headers["upload-offset"])
        return True

    def _create(self) -> None:
        metadata = f"filename {_b64(self.file.name)},filetype {_b64(guess_content_type(self.file))}"
        headers = {**TUS, "Upload-Length": str(self.size), "Upload-Metadata": metadata}
        try:
            answer = self.client.send("POST", "/api/v1/uploads", headers=headers)
        except httpx.TransportError as exc:
            raise self.client.unreachable(exc) from None
        if answer.status_code != 201:
            raise problem_from(answer)
        self.url = self.client.absolute_url(answer.headers["location"])
        self.media_id = answer.headers.get("mediajobs-media-id", "")
        self.offset = 0
        self.remembered.put(self.key, {"url": self.url, "media_id": self.media_id, "file": str(self.file)})

    def _refresh_offset(self) -> None:
        with contextlib.suppress(httpx.TransportError):
            answer = self.client.send("HEAD", self.url, headers=TUS)
            if answer.status_code == 200 and "upload-offset" in answer.headers:
                self.offset = int(answer.headers["upload-offset"])
            elif answer.status_code in (404, 410):
                self.remembered.put(self.key, None)
                raise ClientError(
                    "the upload expired or was removed on the server; run the command again to start over",
                    status=answer.status_code,
                )

    def _patch(self) -> None:
        start = self.offset
        # The server judges the file by its first bytes (a text file or a picture is a 415) and answers at
        # once, but the answer is read only after the body is sent: the first PATCH is short, so a refusal
        # comes before the rest of the file is on its way (and before the progress bar is full).
        end = min(self.size, FIRST_PATCH_BYTES) if start == 0 else self.size

        def body() -> Iterator[bytes]:
            sent = start
            with self.file.open("rb") as source:
                source.seek(start)
                while sent < end and (chunk := source.read(min(READ_BYTES, end - sent))):
                    yield chunk
                    sent += len(chunk)
                    self.on_progress(sent)

        headers = {
            **TUS,
            "Upload-Offset": str(start),
            "Content-Type": OCTETS,
            "Content-Length": str(end - start),
        }
        answer = self.client.send("PATCH", self.url, headers=headers, content=body(), timeout_read_s=120.0)
        if answer.status_code == 204:
            self.offset = int(answer.headers.get("upload-offset", self.size))
            return
        if answer.status_code in RETRYABLE:
            raise _Retry(f"HTTP {answer.status_code}")
        if answer.status_code in (404, 410):
            self.remembered.put(self.key, None)
        raise problem_from(answer)


class _Retry(Exception):
    """A refusal worth another try after a pause (another request still writing, a server restarting)."""
