"""A small HTTP client for the mediajobs API, used by the command line."""

from __future__ import annotations

import json
import mimetypes
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urljoin

import httpx

from mediajobs.config import Settings
from mediajobs.jobs import states

UPLOAD_CHUNK_BYTES = 1024 * 1024


class ClientError(Exception):
    """The API refused a request; `detail` and `errors` say why."""

    exit_code = 1

    def __init__(self, detail: str, *, status: int | None = None, errors: list[Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status
        self.errors = errors or []

    def render(self) -> str:
        entries = [text for text in map(describe_error_entry, self.errors) if text not in self.detail]
        return "\n".join([f"error: {self.detail}", *(f"  - {entry}" for entry in entries)])


class ApiUnreachable(ClientError):
    """The API could not be reached at all."""

    exit_code = 2


def describe_error_entry(entry: Any) -> str:
    """One validation error as `where: what`, whatever shape the API gave it."""
    if not isinstance(entry, dict):
        return str(entry)
    message = entry.get("msg") or entry.get("message") or entry.get("detail") or json.dumps(entry)
    where = entry.get("field") or entry.get("loc") or entry.get("pointer") or entry.get("name")
    if isinstance(where, list):
        where = ".".join(str(part) for part in where if part not in ("body", "query", "path"))
    return f"{where}: {message}" if where else str(message)


def problem_from(response: httpx.Response) -> ClientError:
    """The ClientError for an error response, from its problem+json body when there is one."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        detail = body.get("detail") or body.get("title")
        if isinstance(detail, str) and detail:
            errors = body.get("errors")
            return ClientError(
                detail, status=response.status_code, errors=errors if isinstance(errors, list) else []
            )
    text = response.text.strip().replace("\n", " ")[:200]
    reason = f"HTTP {response.status_code} {response.reason_phrase}"
    return ClientError(f"{reason}: {text}" if text else reason, status=response.status_code)


@dataclass(frozen=True)
class SseEvent:
    event: str
    data: str
    id: str | None = None


def parse_sse(lines: Iterable[str]) -> Iterator[SseEvent]:
    """Server-Sent Events from the lines of a `text/event-stream` body (the WHATWG parsing rules)."""
    event, last_id = "", None
    data: list[str] = []
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data:
                yield SseEvent(event or "message", "\n".join(data), last_id)
            event, data = "", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
        elif name == "id" and "\0" not in value:
            last_id = value


def guess_content_type(path: Path) -> str:
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


class ApiClient:
    """The `/api/v1` endpoints, with bearer auth, and API errors raised as ClientError."""

    def __init__(self, base_url: str, *, token: str = "", timeout_s: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Accept": "application/json", "User-Agent": "mediajobs-cli"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.timeout_s = timeout_s
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=self._timeout())

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiClient:
        """`MEDIAJOBS_API_URL` (or HOST:PORT) with the CLI's token (`Settings.cli_token`)."""
        return cls(settings.effective_api_url, token=settings.cli_token)

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def absolute_url(self, url: str) -> str:
        """A URL from the API made absolute: relative paths are under the API base."""
        if url.startswith(("http://", "https://")):
            return url
        return self.base_url + url if url.startswith("/") else urljoin(self.base_url + "/", url)

    def _timeout(self, *, read_s: float | None = None) -> httpx.Timeout:
        return httpx.Timeout(self.timeout_s, connect=5.0, read=read_s or self.timeout_s)

    def send(
        self, method: str, url: str, *, timeout_read_s: float | None = None, **kwargs: Any
    ) -> httpx.Response:
        """One request as it is: the answer whatever its status; transport errors raised as httpx's."""
        return self._http.request(method, url, timeout=self._timeout(read_s=timeout_read_s), **kwargs)

    def unreachable(self, exc: httpx.TransportError) -> ApiUnreachable:
        return self._unreachable(exc)

    def _unreachable(self, exc: httpx.TransportError) -> ApiUnreachable:
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            return ApiUnreachable(
                f"cannot reach the mediajobs API at {self.base_url} (is `mediajobs up` running?)"
            )
        return ApiUnreachable(
            f"lost the connection to the mediajobs API at {self.base_url}: {exc or type(exc)}"
        )

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        if response.status_code >= 400:
            raise problem_from(response)
        return response.json() if response.content else None

    def _list(
        self, path: str, *, limit: int | None, cursor: str | None, **filters: str | None
    ) -> dict[str, Any]:
        params = {key: value for key, value in filters.items() if value}
        if limit is not None:
            params["limit"] = str(limit)
        if cursor:
            params["cursor"] = cursor
        page: dict[str, Any] = self._request("GET", path, params=params)
        return page

    def jobs_submit(
        self,
        kind: str,
        params: dict[str, Any],
        *,
        priority: int | None = None,
        max_attempts: int | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"kind": kind, "params": params}
        if priority is not None:
            body["priority"] = priority
        if max_attempts is not None:
            body["max_attempts"] = max_attempts
        job: dict[str, Any] = self._request("POST", "/api/v1/jobs", json=body)
        return job

    def job(self, job_id: str) -> dict[str, Any]:
        job: dict[str, Any] = self._request("GET", f"/api/v1/jobs/{job_id}")
        return job

    def jobs_list(
        self,
        *,
        state: str | None = None,
        kind: str | None = None,
        media_id: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        return self._list(
            "/api/v1/jobs", limit=limit, cursor=cursor, state=state, kind=kind, media_id=media_id
        )

    def job_cancel(self, job_id: str) -> dict[str, Any]:
        job: dict[str, Any] = self._request("DELETE", f"/api/v1/jobs/{job_id}")
        return job

    def job_retry(self, job_id: str) -> dict[str, Any]:
        job: dict[str, Any] = self._request("POST", f"/api/v1/jobs/{job_id}/retry")
        return job

    def job_events(self, job_id: str, *, read_timeout_s: float = 30.0) -> Iterator[dict[str, Any]]:
        """Each `job` event of the job's event stream, until the server ends it."""
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        try:
            with self._http.stream(
                "GET",
                f"/api/v1/jobs/{job_id}/events",
                headers=headers,
                timeout=self._timeout(read_s=read_timeout_s),
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    raise problem_from(response)
                for event in parse_sse(response.iter_lines()):
                    if event.event == "job":
                        yield json.loads(event.data)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None

    def follow(
        self, job_id: str, *, poll_interval_s: float = 1.0, give_up_after_s: float = 60.0
    ) -> Iterator[dict[str, Any]]:
        """The job on each change until it is terminal: the event stream, polling while it is broken."""
        unreachable_since: float | None = None
        while True:
            try:
                for job in self.job_events(job_id):
                    unreachable_since = None
                    yield job
                    if job["state"] in states.TERMINAL:
                        return
                job = self.job(job_id)
            except ApiUnreachable:
                now = time.monotonic()
                unreachable_since = unreachable_since or now
                if now - unreachable_since > give_up_after_s:
                    raise
                time.sleep(poll_interval_s)
                continue
            except ClientError as exc:
                if exc.status is None or (exc.status < 500 and exc.status != 404):
                    raise
                job = self.job(job_id)  # no stream for this job (or a broken one): poll it instead
            unreachable_since = None
            yield job
            if job["state"] in states.TERMINAL:
                return
            time.sleep(poll_interval_s)

    def media_import(self, url: str, *, pipeline: list[str] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"url": url}
        if pipeline is not None:
            body["pipeline"] = pipeline
        created: dict[str, Any] = self._request("POST", "/api/v1/media/imports", json=body)
        return created

    def media_upload(self, path: Path, *, on_progress: Callable[[int], None] | None = None) -> dict[str, Any]:
        """Stream a file as the raw request body of one request (POST /api/v1/media/uploads, not resumable);
        `on_progress` gets each chunk's size."""
        size = path.stat().st_size

        def chunks() -> Iterator[bytes]:
            with path.open("rb") as source:
                while chunk := source.read(UPLOAD_CHUNK_BYTES):
                    yield chunk
                    if on_progress is not None:
                        on_progress(len(chunk))

        headers = {"Content-Type": guess_content_type(path), "Content-Length": str(size)}
        created: dict[str, Any] = self._request(
            "POST",
            "/api/v1/media/uploads",
            params={"filename": path.name},
            headers=headers,
            content=chunks(),
            timeout=self._timeout(read_s=120.0),
        )
        return created

    def media(self, media_id: str) -> dict[str, Any]:
        media: dict[str, Any] = self._request("GET", f"/api/v1/media/{media_id}")
        return media

    def media_list(
        self,
        *,
        state: str | None = None,
        q: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        return self._list("/api/v1/media", limit=limit, cursor=cursor, state=state, q=q)

    def media_rename(self, media_id: str, title: str) -> dict[str, Any]:
        media: dict[str, Any] = self._request("PATCH", f"/api/v1/media/{media_id}", json={"title": title})
        return media

    def media_operate(self, media_id: str, operation: str, body: dict[str, Any] | None = None) -> Any:
        """POST /api/v1/media/{id}/{operation} (mask, remove-frames, clip, analyze, reprocess, downloads)."""
        return self._request("POST", f"/api/v1/media/{media_id}/{operation}", json=body)

    def captions(self, media_id: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self._request("GET", f"/api/v1/media/{media_id}/captions")["items"]
        return items

    def caption_add(self, media_id: str, path: Path, *, language: str, label: str | None) -> dict[str, Any]:
        params = {"language": language, **({"label": label} if label else {})}
        headers = {"Content-Type": "text/vtt" if path.suffix.lower() == ".vtt" else "application/x-subrip"}
        track: dict[str, Any] = self._request(
            "POST",
            f"/api/v1/media/{media_id}/captions",
            params=params,
            content=path.read_bytes(),
            headers=headers,
        )
        return track

    def caption_delete(self, media_id: str, caption_id: str) -> None:
        self._request("DELETE", f"/api/v1/media/{media_id}/captions/{caption_id}")

    def download(
        self, url: str, *, open_output: Callable[[httpx.Response], BinaryIO], on_bytes: Callable[[int], None]
    ) -> None:
        """Stream a file URL of the API (following a redirect to a signed bucket URL; the key is not sent
        there) into what `open_output(response)` opens once the answer's headers are in."""
        try:
            with self._http.stream(
                "GET", self.absolute_url(url), follow_redirects=True, timeout=self._timeout(read_s=120.0)
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    raise problem_from(response)
                out = open_output(response)
                for chunk in response.iter_bytes(UPLOAD_CHUNK_BYTES):
                    out.write(chunk)
                    on_bytes(len(chunk))
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None

    def media_delete(self, media_id: str) -> Any:
        return self._request("DELETE", f"/api/v1/media/{media_id}")
