"""Signed playback URLs: a short-lived HMAC token scoped to one asset, so players need no API key.

A token is `<expires>.<signature>`: the Unix time it stops working and an HMAC-SHA256 over the asset id and
that time, keyed with an API key. It is signed with the first of MEDIAJOBS_API_KEYS and accepted under any of
them, so a key can be rotated by putting the new one first and dropping the old one after a token lifetime.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

from mediajobs.config import Settings

QUERY = "token"


class BadToken(Exception):
    """The playback token is malformed, expired or for another asset."""


def _signature(key: str, media_id: str, expires: int) -> str:
    mac = hmac.new(key.encode(), f"playback:{media_id}:{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:24]).decode().rstrip("=")


def sign(settings: Settings, media_id: str, *, now: float | None = None) -> str | None:
    """A token for `media_id` valid for MEDIAJOBS_PLAYBACK_TOKEN_TTL_S, or None when auth is off."""
    keys = settings.api_key_list
    if not keys:
        return None
    expires = int((now if now is not None else time.time()) + settings.playback_token_ttl_s)
    return f"{expires}.{_signature(keys[0], media_id, expires)}"


def verify(settings: Settings, media_id: str, token: str, *, now: float | None = None) -> int:
    """The token's expiry time if it opens `media_id` now; raise BadToken otherwise."""
    expires_text, _, signature = token.partition(".")
    if not expires_text.isdigit() or not signature or len(token) > 100:
        raise BadToken("malformed playback token")
    expires = int(expires_text)
    if not any(
        hmac.compare_digest(_signature(key, media_id, expires).encode(), signature.encode("utf-8", "replace"))
        for key in settings.api_key_list
    ):
        raise BadToken("the playback token is not valid for this asset")
    if expires < (now if now is not None else time.time()):
        raise BadToken("the playback token has expired; fetch the asset again for fresh URLs")
    return expires
