"""tus 1.0.0 on the wire: its headers, what each refusal answers, Upload-Metadata and Upload-Checksum.

https://tus.io/protocols/resumable-upload: every request but OPTIONS carries `Tus-Resumable: 1.0.0` (else
412), every answer does too; a PATCH body is `application/offset+octet-stream` (else 415) written at
`Upload-Offset` (another offset: 409); a body that fails its `Upload-Checksum` is 460 and stores nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from typing import Any

from pydantic import ValidationError

from mediajobs.api.problems import Problem
from mediajobs.api.uploads import media_type
from mediajobs.media import assets
from mediajobs.media.operations import ProcessParams

VERSION = "1.0.0"
EXTENSIONS = ("creation", "creation-with-upload", "termination", "expiration", "checksum")
OCTETS = "application/offset+octet-stream"
CHECKSUM_MISMATCH = 460
MAX_METADATA_CHARS = 4096
ALGORITHMS: dict[str, Callable[[], Any]] = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha512": hashlib.sha512,
    "md5": lambda: hashlib.md5(usedforsecurity=False),
}
TYPE = re.compile(r"^[A-Za-z0-9!#$&^_.+-]{1,127}/[A-Za-z0-9!#$&^_.+-]{1,127}$")


def headers(**extra: str) -> dict[str, str]:
    """What every tus answer carries, and `extra` (`Upload_Offset="5"` is sent as `Upload-Offset: 5`)."""
    return {"Tus-Resumable": VERSION, **{name.replace("_", "-"): value for name, value in extra.items()}}


def problem(status: int, detail: str, slug: str, **extra: str) -> Problem:
    return Problem(status, detail, slug=slug, headers=headers(**extra))


def check_version(value: str | None) -> None:
    if value != VERSION:
        said = "no Tus-Resumable header" if value is None else f"Tus-Resumable {value!r}"
        raise problem(
            412,
            f"this server speaks tus {VERSION}; the request has {said} (send 'Tus-Resumable: {VERSION}')",
            "tus-version",
            Tus_Version=VERSION,
        )


def http_date(moment: datetime) -> str:
    """RFC 9110's IMF-fixdate, which `Upload-Expires` uses."""
    return format_datetime(moment, usegmt=True)


def parse_size(value: str | None, header: str, *, required: bool = True) -> int | None:
    """A non-negative integer header; 400 naming it otherwise."""
    if value is None:
        if required:
            raise problem(400, f"the {header} header is missing", "bad-header")
        return None
    text = value.strip()
    if not text.isdigit() or not text.isascii() or len(text) > 19:
        raise problem(400, f"{header} must be a non-negative integer, not {value[:40]!r}", "bad-header")
    return int(text)


def parse_metadata(value: str | None) -> dict[str, str]:
    """`Upload-Metadata`: comma-separated `key base64value` pairs (a value may be absent); 400 otherwise."""
    if not value or not value.strip():
        return {}
    if len(value) > MAX_METADATA_CHARS:
        raise problem(400, f"Upload-Metadata is over {MAX_METADATA_CHARS} characters", "bad-metadata")
    pairs: dict[str, str] = {}
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        key, _, encoded = item.partition(" ")
        encoded = encoded.strip()
        if not key.isascii() or not key.isprintable() or key in pairs:
            why = "appears twice" if key in pairs else "is not printable ASCII"
            raise problem(400, f"Upload-Metadata key {key[:40]!r} {why}", "bad-metadata")
        try:
            raw = base64.b64decode(encoded, validate=True)
            pairs[key] = raw.decode("utf-8")
        except (binascii.Error, ValueError):
            raise problem(
                400,
                f"Upload-Metadata value of {key!r} is not base64 of UTF-8 text: send `{key} <base64>` pairs",
                "bad-metadata",
            ) from None
    return pairs


def display_name(raw: str | None) -> str:
    """The file's name as the asset shows it: no directories, no control characters."""
    base = (raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(c for c in base if c.isprintable()).strip()[:255]
    return "" if base in (".", "..") else base


@dataclass(frozen=True)
class Described:
    """What Upload-Metadata says of the file: its name, type and the pipeline to run once it is whole."""

    filename: str
    content_type: str
    pipeline: list[str]


def describe(meta: dict[str, str]) -> Described:
    filename = display_name(meta.get("filename") or meta.get("name"))
    key_name = assets.safe_filename(filename)
    sent = meta.get("filetype") or meta.get("type") or meta.get("contentType") or ""
    content_type = media_type(sent if TYPE.match(sent) else "", key_name)
    params = ProcessParams()
    if "pipeline" in meta:
        steps = [step.strip() for step in meta["pipeline"].split(",") if step.strip()]
        try:
            params = ProcessParams.model_validate({"pipeline": steps})
        except ValidationError:
            raise problem(
                400,
                f"Upload-Metadata pipeline {meta['pipeline'][:80]!r} has unknown steps; steps are among "
                f"{', '.join(assets.PIPELINE_STEPS)}",
                "bad-metadata",
            ) from None
    pipeline: list[str] = list(params.pipeline)
    return Described(filename, content_type, pipeline)


@dataclass
class Checksum:
    """An `Upload-Checksum` to verify the PATCH body against."""

    algorithm: str
    digest: bytes

    def new(self) -> Any:
        return ALGORITHMS[self.algorithm]()


def parse_checksum(value: str | None) -> Checksum | None:
    if value is None:
        return None
    algorithm, _, encoded = value.strip().partition(" ")
    algorithm = algorithm.lower()
    if algorithm not in ALGORITHMS:
        raise problem(
            400,
            f"checksum algorithm {algorithm[:20]!r} is not supported; use one of {', '.join(ALGORITHMS)}",
            "bad-checksum",
        )
    try:
        digest = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        digest = b""
    if len(digest) != ALGORITHMS[algorithm]().digest_size:
        raise problem(400, f"Upload-Checksum must be '{algorithm} <base64 of the digest>'", "bad-checksum")
    return Checksum(algorithm, digest)


def body_type(value: str | None) -> str:
    return (value or "").split(";")[0].strip().lower()
