"""The one gate every request passes before routing: Host, API key, cross-site checks, safe response headers.

Pure ASGI (not BaseHTTPMiddleware) so that SSE and streaming uploads keep streaming, and so that a refusal is
answered before anything reads the body: a stranger learns nothing from validation errors. Every answer says
nosniff and may not be framed (clickjacking): `X-Frame-Options: DENY`, and on HTML `frame-ancestors 'none'`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from urllib.parse import urlsplit

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mediajobs.api.problems import problem_response
from mediajobs.config import Settings
from mediajobs.db.records import parse_id
from mediajobs.media import playback

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Bodies a web page may send to any origin without a CORS preflight: never accepted where JSON is expected.
SIMPLE_TYPES = frozenset({"text/plain", "application/x-www-form-urlencoded", "multipart/form-data"})
# Routes whose body is not JSON (raw or multipart uploads, caption files), and the tus routes, whose every
# request carries a `Tus-Resumable` header (no page sends that cross-site without a preflight) and which
# name their own 415.
NON_JSON_SUFFIXES = ("/media/uploads", "/captions")
NON_JSON_PREFIXES = ("/api/v1/uploads",)
# Answer without a Host check: orchestrators probe these by pod IP, and they reveal nothing but part names.
PROBES = frozenset({"/healthz", "/readyz"})
FILES = re.compile(r"^/api/v1/media/(?P<id>[^/]+)/(?:files|images)/.+$")
MAX_TOKEN_BYTES = 4096
DEFAULT_PORTS = {"http": 80, "https": 443}
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="mediajobs"'}
# Set on every answer by the gate, whatever a route said.
OWN_HEADERS = frozenset({b"x-content-type-options", b"x-frame-options"})
FRAME_ANCESTORS = b"frame-ancestors 'none'"


def split_host(value: str) -> tuple[str, int | None] | None:
    """`name[:port]` or `[v6][:port]` as (lowercase name, port); None when malformed."""
    match = re.fullmatch(
        r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<name>[^:\[\]]+))(?::(?P<port>[0-9]{1,5}))?", value
    )
    if match is None:
        return None
    name = (match["v6"] or match["name"]).lower().rstrip(".")
    return name, int(match["port"]) if match["port"] else None


def origin_matches(origin: str, scheme: str, host: str) -> bool:
    """Whether the Origin header names this request's own scheme://host:port."""
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    own = split_host(host)
    if parts.scheme not in DEFAULT_PORTS or own is None:
        return False
    origin_host = split_host(parts.netloc)
    if origin_host is None or origin_host[0] != own[0]:
        return False
    origin_port = origin_host[1] or DEFAULT_PORTS[parts.scheme]
    if own[1] is None:
        # No port in Host: the default one of whatever the client spoke (a proxy may have ended TLS).
        return origin_host[1] is None
    return parts.scheme == scheme and origin_port == own[1]


class Guard:
    """Refuses what a browser-borne attacker or a stranger sends; adds headers every answer should carry."""

    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.keys = [key.encode() for key in settings.api_key_list]
        self.hosts = settings.allowed_host_set

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: dict[bytes, list[bytes]] = {}
        for name, value in scope.get("headers", []):
            headers.setdefault(name, []).append(value)
        refusal = self.refusal(scope, headers)
        if refusal is not None:
            status, detail, slug, extra = refusal
            response = problem_response(status, detail, slug=slug, headers=extra)
            await response(scope, receive, self._with_headers(scope, send))
            return
        await self.app(scope, receive, self._with_headers(scope, send))

    def refusal(
        self, scope: Scope, headers: dict[bytes, list[bytes]]
    ) -> tuple[int, str, str, dict[str, str] | None] | None:
        """(status, detail, slug, headers) of the answer that refuses this request, or None to let it in."""
        path: str = scope["path"]
        method: str = scope["method"]
        hosts = headers.get(b"host", [])
        host = hosts[0].decode("latin-1") if len(hosts) == 1 else None
        if path not in PROBES and host is None:
            return 400, "send exactly one Host header", "bad-host", None
        if path not in PROBES and not self._host_allowed(host):
            return (
                400,
                f"this server does not answer to the Host {host!r}; add the name to MEDIAJOBS_ALLOWED_HOSTS "
                "(comma-separated) if it is yours",
                "bad-host",
                None,
            )
        if self.keys and self._needs_key(path):
            denied = self._auth(scope, headers, path, method)
            if denied is not None:
                return denied
        if method in STATE_CHANGING:
            sites = {v.decode("latin-1").strip().lower() for v in headers.get(b"sec-fetch-site", [])}
            origins = [v.decode("latin-1").strip() for v in headers.get(b"origin", [])]
            scheme = scope.get("scheme", "http")
            if sites & {"cross-site", "same-site"} or any(
                not origin_matches(origin, scheme, host or "") for origin in origins
            ):
                return (
                    403,
                    "cross-site requests may not change anything here; call the API from its own origin "
                    "or from a program (no Origin header)",
                    "cross-site",
                    None,
                )
            if (
                method != "DELETE"
                and path.startswith("/api/")
                and not path.rstrip("/").endswith(NON_JSON_SUFFIXES)
                and not path.startswith(NON_JSON_PREFIXES)
            ):
                types = [
                    v.decode("latin-1").split(";")[0].strip().lower()
                    for v in headers.get(b"content-type", [])
                ]
                content_type = next((t for t in types if t in SIMPLE_TYPES), None)
                if content_type is not None:
                    return (
                        415,
                        "this route takes a JSON body; send 'Content-Type: application/json', "
                        f"not {content_type!r}",
                        "unsupported-media-type",
                        None,
                    )
        return None

    def _host_allowed(self, host: str | None) -> bool:
        if host is None:
            return False
        parsed = split_host(host.strip())
        return parsed is not None and ("*" in self.hosts or parsed[0] in self.hosts)

    def _needs_key(self, path: str) -> bool:
        if path.startswith("/api/"):
            return True
        return path.rstrip("/") == "/metrics" and not self.settings.metrics_port

    def _auth(
        self, scope: Scope, headers: dict[bytes, list[bytes]], path: str, method: str
    ) -> tuple[int, str, str, dict[str, str] | None] | None:
        values = headers.get(b"authorization", [])
        if len(values) == 1 and self._key_matches(values[0]):
            return None
        match = FILES.match(path)
        if match and method in ("GET", "HEAD"):
            token = QueryParams(scope.get("query_string", b"").decode("latin-1")).get(playback.QUERY)
            if token is not None:
                media_id = parse_id(match["id"])
                try:
                    if media_id is None:
                        raise playback.BadToken("the playback token is not valid for this asset")
                    playback.verify(self.settings, media_id, token)
                except playback.BadToken as exc:
                    return 403, f"{exc}", "bad-playback-token", None
                return None
        if not values:
            detail = (
                "missing Authorization header; "
                "send 'Authorization: Bearer <key>' with one of MEDIAJOBS_API_KEYS"
            )
        elif len(values) > 1:
            detail = "more than one Authorization header; send exactly one 'Authorization: Bearer <key>'"
        else:
            detail = "invalid API key; send 'Authorization: Bearer <key>' with a configured key"
        return 401, detail, "unauthorized", CHALLENGE

    def _key_matches(self, header: bytes) -> bool:
        scheme, _, token = header.partition(b" ")
        token = token.strip()
        if scheme.lower() != b"bearer" or not token or len(token) > MAX_TOKEN_BYTES:
            return False
        # Bytes on both sides: compare_digest refuses non-ASCII str, and a header may hold any byte.
        found = False
        for key in self.keys:
            found |= hmac.compare_digest(token, key)
        return found

    def _with_headers(self, scope: Scope, send: Send) -> Send:
        private = bool(self.keys) and self._needs_key(scope["path"])

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw = [(k, v) for k, v in message.get("headers", []) if k.lower() not in OWN_HEADERS]
                raw += [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY")]
                if any(k.lower() == b"content-type" and v.lower().startswith(b"text/html") for k, v in raw):
                    # No page of ours may be shown in another site's frame (clickjacking).
                    raw = [(k, v) for k, v in raw if k.lower() != b"content-security-policy"]
                    raw.append((b"content-security-policy", FRAME_ANCESTORS))
                if private:
                    raw = _private(raw)
                message = {**message, "headers": raw}
            await send(message)

        return sending


def api_key_id(request: Request) -> str | None:
    """Which configured API key let this request in (a digest of it, for scoping what callers own); None
    when no keys are configured. The gate has checked there is exactly one, and that it is valid."""
    if not request.app.state.settings.api_key_list:
        return None
    token = request.headers.get("authorization", "").partition(" ")[2].strip()
    return hashlib.sha256(token.encode("latin-1", "replace")).hexdigest()[:16]


def _private(raw: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Answers opened by a key stay out of shared caches: `public` becomes `private`, none is no-store."""
    out: list[tuple[bytes, bytes]] = []
    seen = False
    for name, value in raw:
        if name.lower() == b"cache-control":
            seen = True
            value = re.sub(rb"(?i)\bpublic\b", b"private", value)
            if b"private" not in value.lower() and b"no-store" not in value.lower():
                value = b"private, " + value
        out.append((name, value))
    if not seen:
        out.append((b"cache-control", b"no-store"))
    return out
