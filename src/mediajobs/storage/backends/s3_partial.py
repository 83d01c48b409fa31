"""Partial objects on S3: whole parts go into a multipart upload, a shorter tail waits as an object alone.

As tusd's S3 store does: S3 takes parts of at least 5 MiB (but the last), while a resumable upload may stop
after any byte. Part N always holds bytes [(N-1) x part_size, N x part_size), so the state needs no part list
(the parts are listed when the object is finished); the bytes after the last whole part are stored, when a
writer flushes, as the object `<key>.partial/<size>`. The next writer reads that tail back (at most one
part) and carries on. Each state names its own tail, so a writer that stores a tail and then fails to get it
recorded leaves the recorded one intact.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from mediajobs.storage.partial import Partial, PartialLost, PartialWriter
from mediajobs.storage.storage import StorageError, content_type_for, safe_prefix

if TYPE_CHECKING:
    from mediajobs.storage.backends.s3 import S3Storage

log = logging.getLogger(__name__)

MAX_PARTS = 10_000
TAILS = ".partial"


def tails_prefix(key: str) -> str:
    return safe_prefix(f"{key}{TAILS}")


def tail_key(key: str, size: int) -> str:
    return f"{tails_prefix(key)}{size}"


def begin(storage: S3Storage, key: str, content_type: str | None, size_hint: int) -> Partial:
    # Parts grow past the storage's part size only when 10,000 of them would not hold the whole object.
    part_size = max(storage.part_size_bytes, math.ceil(size_hint / (MAX_PARTS - 1)))
    return {
        "size": 0,
        "part_size": part_size,
        "upload_id": None,
        "content_type": content_type or content_type_for(key),
    }


def _is_code(exc: BaseException, *codes: str) -> bool:
    cause = exc.__cause__ if isinstance(exc, StorageError) else exc
    return isinstance(cause, ClientError) and cause.response.get("Error", {}).get("Code") in codes


class S3PartialWriter(PartialWriter):
    """Buffers at most one part (the stored tail, then what arrives); each whole part is uploaded at once."""

    def __init__(self, storage: S3Storage, key: str, state: Partial) -> None:
        super().__init__(key, state)
        self._s3 = storage
        self._part_size = int(state["part_size"])
        self._upload_id: str | None = state.get("upload_id")
        self._created = False  # this writer started the multipart upload (not yet in any recorded state)
        self._parts = self.size // self._part_size
        self._tails: list[str] = []  # tails this writer stored
        tail = self.size - self._parts * self._part_size
        self._buffer = bytearray()
        if tail:
            try:
                self._buffer += self._s3.read_bytes(tail_key(key, self.size))
            except StorageError as exc:
                if _is_code(exc, "NoSuchKey", "404", "NotFound"):
                    raise PartialLost(f"the stored tail of {key!r} is missing") from exc
                raise
            if len(self._buffer) != tail:
                raise PartialLost(f"the stored tail of {key!r} holds {len(self._buffer)} of {tail} bytes")

    @property
    def _params(self) -> dict[str, Any]:
        return {"Bucket": self._s3.bucket, "Key": self._s3.full_key(self.key)}

    def _write(self, data: bytes) -> None:
        self._buffer += data
        while len(self._buffer) >= self._part_size:
            with memoryview(self._buffer) as view:
                part = bytes(view[: self._part_size])
            del self._buffer[: self._part_size]
            self._upload_part(part)

    def _upload_part(self, part: bytes) -> None:
        client = self._s3.client
        number = self._parts + 1
        if number > MAX_PARTS:
            raise StorageError(f"{self.key!r} needs more than {MAX_PARTS} parts")
        with self._s3.errors("write", self.key):
            if self._upload_id is None:
                started = client.create_multipart_upload(
                    **self._params, ContentType=self.start["content_type"]
                )
                self._upload_id, self._created = started["UploadId"], True
            client.upload_part(**self._params, UploadId=self._upload_id, PartNumber=number, Body=part)
        self._parts = number

    def _state(self, size: int) -> Partial:
        return {**self.start, "size": size, "upload_id": self._upload_id}

    def checkpoint(self) -> Partial:
        stored = self._parts * self._part_size
        return self._state(stored) if stored > int(self.start["size"]) else dict(self.start)

    def flush(self) -> Partial:
        if self.size == int(self.start["size"]):
            return dict(self.start)
        if self._buffer:
            tail = tail_key(self.key, self.size)
            self._s3.put_bytes(tail, bytes(self._buffer), content_type="application/octet-stream")
            self._tails.append(tail)
        return self._state(self.size)

    def recorded(self, state: Partial) -> None:
        self._created = False
        keep = tail_key(self.key, int(state["size"]))
        old = int(self.start["size"])
        for tail in [*([tail_key(self.key, old)] if old % self._part_size else []), *self._tails]:
            if tail != keep:
                self._forget(tail)
        self.start = dict(state)
        self._tails = []

    def discard(self) -> None:
        for tail in self._tails:
            self._forget(tail)
        self._tails = []
        if self._created and self._upload_id is not None:
            try:
                with self._s3.errors("abort", self.key):
                    self._s3.client.abort_multipart_upload(**self._params, UploadId=self._upload_id)
            except StorageError as exc:  # not fatal: finishing or aborting the object sweeps strays
                log.warning("could not abort the multipart upload of %s: %s", self.key, exc)
            self._upload_id, self._created = None, False

    def close(self) -> None:
        self._buffer = bytearray()

    def _forget(self, tail: str) -> None:
        try:
            self._s3.delete(tail)
        except StorageError as exc:  # a stray tail goes when the object is finished or aborted
            log.warning("could not delete %s: %s", tail, exc)


def finish(storage: S3Storage, key: str, state: Partial) -> int:
    size, part_size = int(state["size"]), int(state["part_size"])
    upload_id: str | None = state.get("upload_id")
    parts, tail = divmod(size, part_size)
    params = {"Bucket": storage.bucket, "Key": storage.full_key(key)}
    try:
        if upload_id is None:
            body = storage.read_bytes(tail_key(key, size)) if size else b""
            storage.put_bytes(key, body, content_type=state.get("content_type"))
        else:
            with storage.errors("write", key):
                if tail:
                    body = storage.read_bytes(tail_key(key, size))
                    storage.client.upload_part(**params, UploadId=upload_id, PartNumber=parts + 1, Body=body)
                    parts += 1
                listed = _list_parts(storage, params, upload_id)[:parts]
                if [p["PartNumber"] for p in listed] != list(range(1, parts + 1)):
                    raise PartialLost(f"{key!r} lacks some of its {parts} parts")
                storage.client.complete_multipart_upload(
                    **params,
                    UploadId=upload_id,
                    MultipartUpload={
                        "Parts": [{"ETag": p["ETag"], "PartNumber": p["PartNumber"]} for p in listed]
                    },
                )
    except StorageError as exc:
        done = storage.stat(key)
        gone = _is_code(exc, "NoSuchUpload", "NoSuchKey", "404", "NotFound")
        if gone and (done is None or done.size != size):
            raise PartialLost(f"{key!r} has no stored bytes to finish ({exc})") from exc
        if not gone:
            raise
        # Finished before: the record of it was what did not happen.
    _sweep(storage, key)
    stored = storage.stat(key)
    if stored is None or stored.size != size:
        raise PartialLost(f"{key!r} was finished with {stored.size if stored else 0} of {size} bytes")
    return size


def _list_parts(storage: S3Storage, params: dict[str, Any], upload_id: str) -> list[dict[str, Any]]:
    pages = storage.client.get_paginator("list_parts").paginate(**params, UploadId=upload_id)
    return sorted((p for page in pages for p in page.get("Parts", [])), key=lambda p: int(p["PartNumber"]))


def abort(storage: S3Storage, key: str, state: Partial) -> None:
    _sweep(storage, key)


def _sweep(storage: S3Storage, key: str) -> None:
    """Remove the tails and every unfinished multipart upload of `key` (a writer that died may leave one)."""
    storage.delete_prefix(tails_prefix(key))
    full = storage.full_key(key)
    with storage.errors("abort", key):
        pages = storage.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=storage.bucket, Prefix=full
        )
        for page in pages:
            for upload in page.get("Uploads", []):
                if upload["Key"] != full:
                    continue
                try:
                    storage.client.abort_multipart_upload(
                        Bucket=storage.bucket, Key=full, UploadId=upload["UploadId"]
                    )
                except ClientError as exc:
                    if exc.response.get("Error", {}).get("Code") != "NoSuchUpload":
                        raise
