"""Signed playback URLs: a short-lived HMAC token scoped to one asset, so players need no API key.

A token is `<expires>.<signature>`: the Unix time it stops working and an HMAC-SHA256 over the asset id and
that time, keyed with an API key. It is signed with the first of MEDIAJOBS_API_KEYS and accepted under any of
them, so a key can be rotated by putting the new one first and dropping the old one after a token lifetime.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
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


def expires_in_s(settings: Settings, media_id: str, token: str | None, *, now: float | None = None) -> int:
    """How long a URL handed on for this request may live: the token's remaining lifetime, else the TTL."""
    now = now if now is not None else time.time()
    if token:
        try:
            return max(1, int(verify(settings, media_id, token, now=now) - now))
        except BadToken:
            pass
    return settings.playback_token_ttl_s


# A scheme (`https:`, `data:`, `skd:`) or a leading '/' means the URI points elsewhere: it gets no token,
# which would otherwise leak to another host (or open nothing there).
_ELSEWHERE = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]*:|/)")
_URI_ATTRIBUTE = re.compile(r'(?<=[:,])URI="([^"]*)"')


def _with_token(uri: str, token: str) -> str:
    if not uri or _ELSEWHERE.match(uri):
        return uri
    uri, hash_, fragment = uri.partition("#")
    return f"{uri}{'&' if '?' in uri else '?'}{QUERY}={token}{hash_}{fragment}"


def tokenize_playlist(text: str, token: str) -> str:
    """The playlist with `token` on every relative child URI: URI lines and tags' URI="..." attributes."""
    out = []
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        end = line[len(body) :]
        stripped = body.strip()
        if stripped.startswith("#EXT"):
            body = _URI_ATTRIBUTE.sub(lambda m: f'URI="{_with_token(m[1], token)}"', body)
        elif stripped and not stripped.startswith("#"):
            body = _with_token(stripped, token)
        out.append(body + end)
    return "".join(out)


# A storyboard cue's payload: an image beside the VTT, with an optional media fragment (`#xywh=...`).
_IMAGE_REFERENCE = re.compile(r"^[^\s?#]+\.(?:jpe?g|png|webp)(?:#xywh=\d+,\d+,\d+,\d+)?$", re.IGNORECASE)


def tokenize_vtt(text: str, token: str) -> str:
    """A WebVTT file with `token` on every relative image reference (storyboard cues); text cues untouched."""
    out = []
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        if _IMAGE_REFERENCE.match(body.strip()):
            body = _with_token(body.strip(), token)
        out.append(body + line[len(line.rstrip("\r\n")) :])
    return "".join(out)
