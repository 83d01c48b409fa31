"""What a bucket's CORS rules must allow when players are redirected to it, and `doctor`'s check of that.

With `MEDIAJOBS_S3_REDIRECT=all` a player's segment requests end at the bucket: hls.js reads them with CORS
from the page's origin (the API's, for the web UI), and sends `Range` for byte ranges. S3 (and R2) pick the
first rule whose origin, method and requested headers all match, so each need is checked against the rules
that name the origin.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from mediajobs.config import Settings
from mediajobs.storage.handles import for_process

METHODS = ("GET", "HEAD")
HEADER = "range"
DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> str:
    """The browser origin (`scheme://host[:port]`) of a URL, as an `Origin` header would carry it."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port and parts.port != DEFAULT_PORTS.get(scheme) else ""
    return f"{scheme}://{host}{port}"


def _matches(pattern: str, value: str, *, fold: bool = False) -> bool:
    # S3 and R2 allow one `*` in an origin or header pattern, standing for any run of characters.
    if fold:
        pattern, value = pattern.lower(), value.lower()
    return re.fullmatch(".*".join(re.escape(p) for p in pattern.split("*")), value) is not None


def gaps(rules: Sequence[dict[str, Any]], origin: str) -> list[str]:
    """What the rules (GetBucketCors' `CORSRules`) fail to allow a player on `origin`; empty when nothing."""
    named = [r for r in rules if any(_matches(o, origin) for o in r.get("AllowedOrigins", []))]
    if not named:
        return [f"no rule allows the origin {origin}"]
    problems = []
    missing = [m for m in METHODS if not any(m in r.get("AllowedMethods", []) for r in named)]
    if missing:
        problems.append(f"no rule for {origin} allows {' or '.join(missing)}")
    if not any(
        "GET" in r.get("AllowedMethods", [])
        and any(_matches(h, HEADER, fold=True) for h in r.get("AllowedHeaders", []))
        for r in named
    ):
        problems.append(f'no rule for {origin} allows GET with the Range header (AllowedHeaders: ["range"])')
    return problems


def check_playback(settings: Settings) -> str:
    """`doctor`: can browsers play what the API hands out? Raise naming what the bucket's rules lack."""
    # For start-up cost alone (boto3), as in `handles.open_storage`: file storage never loads it.
    from mediajobs.storage.backends.s3 import S3Storage

    storage = for_process(settings)
    if not isinstance(storage, S3Storage):
        return "the API streams every file (same origin: no CORS involved)"
    if settings.s3_redirect != "all":
        mode = settings.s3_redirect
        return f"the API streams HLS (MEDIAJOBS_S3_REDIRECT={mode}): the bucket needs no CORS rules"
    origin = origin_of(settings.effective_api_url)
    rules = storage.cors_rules()
    problems = gaps(rules, origin) if rules else [f"{storage.describe()} has no CORS rules"]
    if problems:
        raise RuntimeError(
            "MEDIAJOBS_S3_REDIRECT=all sends players to the bucket, but "
            + "; ".join(problems)
            + f": add a rule allowing {origin} (MEDIAJOBS_API_URL) to GET and HEAD with the Range header"
            " (see the README), or unset MEDIAJOBS_S3_REDIRECT so that the API streams HLS"
        )
    return f"bucket CORS rules let {origin} GET and HEAD with Range (MEDIAJOBS_S3_REDIRECT=all)"
