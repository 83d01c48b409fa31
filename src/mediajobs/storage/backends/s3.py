"""Storage in an S3-compatible bucket (AWS, R2, MinIO, ...) through boto3; credentials from `AWS_*`."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from stat import S_ISREG
from typing import Any

import boto3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
)

from mediajobs.storage.backends import s3_partial
from mediajobs.storage.partial import Partial
from mediajobs.storage.storage import (
    CHUNK_BYTES,
    PART_SIZE_BYTES,
    ByteStream,
    InvalidRange,
    ObjectInfo,
    ObjectNotFound,
    ObjectWriter,
    Storage,
    StorageDenied,
    StorageError,
    StorageUnavailable,
    content_type_for,
    join_key,
    retry,
    safe_key,
    safe_prefix,
)

log = logging.getLogger(__name__)

MIN_PART_BYTES = 5 * 1024 * 1024  # S3 refuses smaller parts (except the last)
MAX_PARTS = 10_000
DELETE_BATCH = 1000  # DeleteObjects' limit; list_objects_v2 pages are this size too
TRANSIENT_CODES = {"SlowDown", "Throttling", "RequestTimeout", "ServiceUnavailable", "InternalError"}
# Refusals of these credentials (or of their permissions): the same request will never pass.
DENIED_CODES = {
    "AccessDenied",
    "AllAccessDisabled",
    "AccountProblem",
    "ExpiredToken",
    "InvalidAccessKeyId",
    "InvalidToken",
    "SignatureDoesNotMatch",
}
# Bounded waits, never a hang: an endpoint that does not accept connections fails an operation within
# ATTEMPTS x CONNECT_TIMEOUT_S (a refused one within a second: botocore's backoff for errors other than
# throttling is tens of ms), one that accepts but stays silent within ATTEMPTS x READ_TIMEOUT_S; then the
# job's own retries decide. Five attempts ride out throttling (1 s, 2 s, 4 s, 8 s) during long uploads.
ATTEMPTS = 5
CHECK_KEY = ".mediajobs-check"  # under the prefix: written and deleted by check() (readyz, doctor)
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 30.0


def _add_content_md5(request: Any, **_: Any) -> None:
    # botocore >= 1.36 signs DeleteObjects with CRC32 only; MinIO and other S3-compatible servers
    # still demand the Content-MD5 that the S3 API documents as required.
    body = request.body.encode() if isinstance(request.body, str) else request.body
    if isinstance(body, bytes) and "Content-MD5" not in request.headers:
        digest = hashlib.md5(body, usedforsecurity=False).digest()
        request.headers["Content-MD5"] = base64.b64encode(digest).decode()


class S3Writer(ObjectWriter):
    """Buffers one part at a time; the multipart upload starts only once a whole part is written."""

    def __init__(self, storage: S3Storage, key: str, content_type: str) -> None:
        super().__init__(key)
        self._s3 = storage
        self._params = {"Bucket": storage.bucket, "Key": storage.full_key(key)}
        self._content_type = content_type
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []

    def _write(self, data: bytes) -> None:
        self._buffer += data
        size = self._s3.part_size_bytes
        while len(self._buffer) >= size:
            with memoryview(self._buffer) as view:
                part = bytes(view[:size])
            del self._buffer[:size]
            self._upload_part(part)

    def _upload_part(self, part: bytes) -> None:
        client = self._s3.client
        with self._s3.errors("write", self.key):
            if self._upload_id is None:
                started = client.create_multipart_upload(**self._params, ContentType=self._content_type)
                self._upload_id = started["UploadId"]
            number = len(self._parts) + 1
            if number > MAX_PARTS:
                raise StorageError(f"{self.key!r} needs more than {MAX_PARTS} parts; raise the part size")
            done = client.upload_part(**self._params, UploadId=self._upload_id, PartNumber=number, Body=part)
        self._parts.append({"ETag": done["ETag"], "PartNumber": number})

    def _commit(self) -> None:
        client = self._s3.client
        if self._upload_id is None:
            with self._s3.errors("write", self.key):
                client.put_object(**self._params, Body=bytes(self._buffer), ContentType=self._content_type)
        else:
            if self._buffer:
                self._upload_part(bytes(self._buffer))
            with self._s3.errors("write", self.key):
                client.complete_multipart_upload(
                    **self._params, UploadId=self._upload_id, MultipartUpload={"Parts": self._parts}
                )
        self._buffer = bytearray()

    def _abort(self) -> None:
        self._buffer = bytearray()
        if self._upload_id is not None:
            try:
                with self._s3.errors("abort", self.key):
                    self._s3.client.abort_multipart_upload(**self._params, UploadId=self._upload_id)
            except StorageError as exc:
                # Not fatal: delete_prefix also aborts stray uploads, and bucket lifecycle rules can.
                log.warning("could not abort the multipart upload of %s: %s", self.key, exc)


class S3Storage(Storage):
    """Objects under `prefix` in `bucket`; the API can redirect to presigned URLs."""

    def __init__(
        self,
        *,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        addressing_style: str = "auto",
        part_size_bytes: int = PART_SIZE_BYTES,
        max_concurrency: int = 8,
    ) -> None:
        if not 3 <= len(bucket) <= 63:
            raise StorageError(f"S3 bucket name {bucket!r} must be 3 to 63 characters: s3://bucket[/prefix]")
        if addressing_style not in ("auto", "path", "virtual"):
            raise StorageError(f"S3 addressing style {addressing_style!r} must be auto, path or virtual")
        if part_size_bytes < MIN_PART_BYTES:
            raise StorageError(f"S3 part size must be at least {MIN_PART_BYTES} bytes")
        self.bucket = bucket
        self.prefix = safe_prefix(prefix) if prefix else ""
        self.endpoint_url = endpoint_url
        self.addressing_style = addressing_style
        self.part_size_bytes = part_size_bytes
        self.max_concurrency = max_concurrency
        self._session = boto3.session.Session()
        self.client = self._client(attempts=ATTEMPTS)
        threshold = {"multipart_threshold": part_size_bytes, "multipart_chunksize": part_size_bytes}
        self._transfer = TransferConfig(**threshold, max_concurrency=max_concurrency)
        # put_dir and copy_prefix parallelise across files, so each file goes up on its own thread.
        self._serial_transfer = TransferConfig(**threshold, use_threads=False)

    def _client(
        self,
        *,
        attempts: int,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        read_timeout_s: float = READ_TIMEOUT_S,
    ) -> Any:
        config = Config(
            s3={"addressing_style": self.addressing_style},
            retries={"max_attempts": attempts, "mode": "standard"},
            signature_version="s3v4",
            # Many S3-compatible servers reject the CRC32 checksum trailers botocore sends by default.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            connect_timeout=connect_timeout_s,
            read_timeout=read_timeout_s,
            max_pool_connections=max(10, 2 * self.max_concurrency),
        )
        client = self._session.client("s3", endpoint_url=self.endpoint_url, config=config)
        client.meta.events.register("before-sign.s3.DeleteObjects", _add_content_md5)
        return client

    @cached_property
    def _check_client(self) -> Any:
        # Readiness probes must answer fast: no retries, short timeouts.
        return self._client(attempts=1, connect_timeout_s=3, read_timeout_s=5)

    def _pages(self, operation: str, full_prefix: str) -> Iterator[dict[str, Any]]:
        pages = self.client.get_paginator(operation).paginate(
            Bucket=self.bucket, Prefix=full_prefix, PaginationConfig={"PageSize": DELETE_BATCH}
        )
        return iter(pages)

    def full_key(self, key: str) -> str:
        return self.prefix + safe_key(key)

    @property
    def _where(self) -> str:
        return f"bucket {self.bucket!r} at {self.endpoint_url or 'AWS'}"

    @contextmanager
    def errors(self, what: str, key: str) -> Iterator[None]:
        """Turn boto3's exceptions into the storage error tree, with a message that says what to fix."""
        try:
            yield
        except ClientError as exc:
            raise self._translate(exc, what, key) from exc
        except S3UploadFailedError as exc:
            cause = exc.__context__
            if isinstance(cause, ClientError):
                raise self._translate(cause, what, key) from exc
            raise StorageUnavailable(f"cannot {what} {key!r}: {exc}") from exc
        except (HTTPClientError, ConnectionError) as exc:
            raise StorageUnavailable(f"cannot reach S3 endpoint {self.endpoint_url or 'AWS'}: {exc}") from exc
        except (NoCredentialsError, PartialCredentialsError) as exc:
            raise StorageDenied("no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY") from exc
        except BotoCoreError as exc:
            raise StorageError(f"cannot {what} {key!r}: {exc}") from exc

    def _translate(self, exc: ClientError, what: str, key: str) -> StorageError:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        message = exc.response.get("Error", {}).get("Message", "") or code
        if code == "NoSuchBucket":
            return StorageError(f"{self._where} does not exist")
        if code in ("NoSuchKey", "NotFound", "404"):
            return ObjectNotFound(f"no object {key!r}")
        if status == 403 or code in DENIED_CODES:
            return StorageDenied(
                f"access denied to {self._where} ({code}); check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY"
                " and the bucket policy"
            )
        if code == "InvalidRange" or status == 416:
            return InvalidRange(f"byte range is outside object {key!r}")
        if status >= 500 or code in TRANSIENT_CODES:
            return StorageUnavailable(f"cannot {what} {key!r}: S3 answered {status} {code}: {message}")
        return StorageError(f"cannot {what} {key!r}: S3 answered {status} {code}: {message}")

    def put_file(
        self, key: str, path: Path, *, content_type: str | None = None, consume: bool = False
    ) -> None:
        self._put_file(key, path, content_type or content_type_for(key), self._transfer)
        if consume:
            path.unlink(missing_ok=True)

    def _put_file(self, key: str, path: Path, content_type: str, transfer: TransferConfig) -> None:
        full = self.full_key(key)
        try:
            # Never through a symlink: a job's output is written where its jailed children could put one
            # pointing at a file of the worker's.
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            raise StorageError(f"cannot store {key!r}: {path} is not a regular file") from exc
        try:
            if not S_ISREG(os.fstat(fd).st_mode):
                raise StorageError(f"cannot store {key!r}: {path} is not a regular file")
            with self.errors("write", key):
                extra = {"ContentType": content_type}
                # The transfer opens the file once per part: by the descriptor's name, the file checked above.
                opened = f"/proc/self/fd/{fd}"
                self.client.upload_file(opened, self.bucket, full, ExtraArgs=extra, Config=transfer)
        finally:
            os.close(fd)

    def put_bytes(self, key: str, data: bytes, *, content_type: str | None = None) -> None:
        full = self.full_key(key)
        with self.errors("write", key):
            self.client.put_object(
                Bucket=self.bucket, Key=full, Body=data, ContentType=content_type or content_type_for(key)
            )

    def put_dir(self, prefix: str, directory: Path, *, consume: bool = False) -> list[str]:
        safe_prefix(prefix)
        if not directory.is_dir():
            raise StorageError(f"cannot upload {directory}: not a directory")
        # Every key is validated before the first upload, so a bad name uploads nothing.
        paths = [p for p in directory.rglob("*") if p.is_file()]
        files = {join_key(prefix, p.relative_to(directory).as_posix()): p for p in paths}

        def upload(key: str) -> None:
            self._put_file(key, files[key], content_type_for(key), self._serial_transfer)
            if consume:
                files[key].unlink(missing_ok=True)

        with ThreadPoolExecutor(self.max_concurrency) as pool:
            [*pool.map(upload, files)]
        return sorted(files)

    def open_writer(self, key: str, *, content_type: str | None = None) -> S3Writer:
        safe_key(key)
        return S3Writer(self, key, content_type or content_type_for(key))

    def get_file(self, key: str, path: Path) -> None:
        full = self.full_key(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with self.errors("read", key):
            self.client.download_file(self.bucket, full, str(path), Config=self._transfer)

    def open_reader(self, key: str, *, start: int | None = None, end: int | None = None) -> ByteStream:
        params = {"Bucket": self.bucket, "Key": self.full_key(key)}
        if start is not None or end is not None:
            first = start or 0
            if first < 0 or (end is not None and end < first):
                raise InvalidRange(f"byte range {start}-{end} is not valid")
            params["Range"] = f"bytes={first}-{'' if end is None else end}"
        with self.errors("read", key):
            body = self.client.get_object(**params)["Body"]

        def chunks() -> Iterator[bytes]:
            with self.errors("read", key):
                yield from body.iter_chunks(CHUNK_BYTES)

        return ByteStream(chunks(), body.close)

    def read_bytes(self, key: str) -> bytes:
        full = self.full_key(key)
        with self.errors("read", key):
            return bytes(self.client.get_object(Bucket=self.bucket, Key=full)["Body"].read())

    def stat(self, key: str) -> ObjectInfo | None:
        full = self.full_key(key)
        try:
            with self.errors("stat", key):
                head = self.client.head_object(Bucket=self.bucket, Key=full)
        except ObjectNotFound:
            return None
        return ObjectInfo(
            key=key,
            size=int(head["ContentLength"]),
            content_type=head.get("ContentType") or content_type_for(key),
            etag=str(head.get("ETag", "")).strip('"') or None,
            modified_at=head.get("LastModified"),
        )

    def delete(self, key: str) -> None:
        full = self.full_key(key)
        with self.errors("delete", key):
            self.client.delete_object(Bucket=self.bucket, Key=full)

    def delete_prefix(self, prefix: str) -> int:
        full = self.prefix + safe_prefix(prefix)
        removed = 0

        def sweep() -> None:
            nonlocal removed
            failed: list[dict[str, Any]] = []
            with self.errors("delete", prefix):
                for page in self._pages("list_objects_v2", full):
                    batch = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                    if batch:
                        answer = self.client.delete_objects(
                            Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                        )
                        errors = answer.get("Errors", [])
                        failed += errors
                        removed += len(batch) - len(errors)
                self._abort_uploads(full)
                left = self.client.list_objects_v2(Bucket=self.bucket, Prefix=full, MaxKeys=1)
            if failed or left.get("KeyCount", 0):
                why = (
                    f"{failed[0].get('Code')}: {failed[0].get('Message')}" if failed else "new ones appeared"
                )
                raise StorageUnavailable(f"objects under {prefix!r} are left after deleting ({why})")

        retry(sweep)
        return removed

    def _abort_uploads(self, full_prefix: str) -> None:
        # Unfinished multipart uploads are invisible to list() but still hold (billed) parts.
        for page in self._pages("list_multipart_uploads", full_prefix):
            for upload in page.get("Uploads", []):
                try:
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
                except ClientError as exc:
                    if exc.response.get("Error", {}).get("Code") != "NoSuchUpload":
                        raise

    def copy_prefix(self, src_prefix: str, dst_prefix: str) -> list[str]:
        src, dst = safe_prefix(src_prefix), safe_prefix(dst_prefix)
        # Listed in full first, so copying into a prefix under `src` cannot copy its own copies.
        pairs = [(key, safe_key(dst + key.removeprefix(src))) for key in self.list(src)]

        def copy(pair: tuple[str, str]) -> str:
            source = {"Bucket": self.bucket, "Key": self.full_key(pair[0])}
            with self.errors("copy", pair[0]):
                self.client.copy(source, self.bucket, self.full_key(pair[1]), Config=self._serial_transfer)
            return pair[1]

        with ThreadPoolExecutor(self.max_concurrency) as pool:
            return [*pool.map(copy, pairs)]

    def signed_url(
        self,
        key: str,
        *,
        expires_s: int = 3600,
        content_type: str | None = None,
        disposition: str | None = None,
    ) -> str | None:
        params = {"Bucket": self.bucket, "Key": self.full_key(key)}
        if content_type:
            params["ResponseContentType"] = content_type
        if disposition:
            params["ResponseContentDisposition"] = disposition
        with self.errors("sign", key):
            return str(self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_s))

    def begin_partial(self, key: str, *, content_type: str | None = None, size_hint: int = 0) -> Partial:
        safe_key(key)
        return s3_partial.begin(self, key, content_type, size_hint)

    def resume_partial(self, key: str, state: Partial) -> s3_partial.S3PartialWriter:
        return s3_partial.S3PartialWriter(self, key, state)

    def finish_partial(self, key: str, state: Partial) -> int:
        return s3_partial.finish(self, key, state)

    def abort_partial(self, key: str, state: Partial) -> None:
        s3_partial.abort(self, key, state)

    def cors_rules(self) -> list[dict[str, Any]]:
        """The bucket's CORS rules, as GetBucketCors names them (`AllowedOrigins`, ...); [] if none."""
        with self.errors("read the CORS rules of", self.bucket):
            try:
                answer = self._check_client.get_bucket_cors(Bucket=self.bucket)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "NoSuchCORSConfiguration":
                    return []
                raise
        return list(answer.get("CORSRules", []))

    def check(self) -> None:
        client = self._check_client
        probe = f"{self.prefix}{CHECK_KEY}"
        try:
            with self.errors("check", self.bucket):
                client.head_bucket(Bucket=self.bucket)
                client.put_object(Bucket=self.bucket, Key=probe, Body=b"ok")
                client.delete_object(Bucket=self.bucket, Key=probe)
        except ObjectNotFound as exc:
            # HEAD answers carry no error body, so a missing bucket surfaces as a bare 404.
            raise StorageError(f"{self._where} does not exist") from exc

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix} @ {self.endpoint_url or 'AWS'}"

    # Last in the class: a method named `list` shadows the builtin in annotations that follow it.
    def list(self, prefix: str) -> Iterator[str]:
        full = self.prefix + safe_prefix(prefix) if prefix else self.prefix
        with self.errors("list", prefix):
            for page in self._pages("list_objects_v2", full):
                for item in page.get("Contents", []):
                    yield item["Key"].removeprefix(self.prefix)
