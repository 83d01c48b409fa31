"""An S3 server that answers CORS as a fresh bucket does: a loopback front for moto.

moto's server wraps every answer in flask-cors, so any origin may read any object, and a browser test against
it passes where a real S3 or R2 bucket would refuse. This front forwards everything but CORS to moto, drops
moto's `Access-Control-*` headers and answers CORS itself from the bucket's stored rules (GetBucketCors), as
S3 documents it: without rules a preflight is 403 and no answer carries CORS headers; with rules the first
rule whose origin, method and requested headers all match decides, and nothing else is allowed.
"""

from __future__ import annotations

import http.client
import http.server
import ipaddress
import re
import sys
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}
CHUNK_BYTES = 64 * 1024
NOT_ENABLED = "CORSResponse: CORS is not enabled for this bucket."
NOT_ALLOWED = (
    "CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, "
    "request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted "
    "by the resource's CORS spec."
)


@dataclass(frozen=True)
class CorsRule:
    origins: tuple[str, ...]
    methods: tuple[str, ...]
    headers: tuple[str, ...] = ()
    expose: tuple[str, ...] = ()
    max_age_s: int | None = None


def wildcard(pattern: str, value: str, *, fold: bool = False) -> bool:
    """S3's matching: the pattern may hold one `*` standing for any run of characters."""
    if fold:
        pattern, value = pattern.lower(), value.lower()
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, value) is not None


def parse_rules(xml: bytes) -> list[CorsRule]:
    """The rules of a GetBucketCors answer (a CORSConfiguration document)."""

    def texts(rule: ET.Element, name: str) -> tuple[str, ...]:
        return tuple((e.text or "").strip() for e in rule if e.tag.rsplit("}", 1)[-1] == name)

    rules = []
    for rule in ET.fromstring(xml):
        if rule.tag.rsplit("}", 1)[-1] != "CORSRule":
            continue
        max_age = texts(rule, "MaxAgeSeconds")
        rules.append(
            CorsRule(
                origins=texts(rule, "AllowedOrigin"),
                methods=texts(rule, "AllowedMethod"),
                headers=texts(rule, "AllowedHeader"),
                expose=texts(rule, "ExposeHeader"),
                max_age_s=int(max_age[0]) if max_age else None,
            )
        )
    return rules


def matching_rule(
    rules: list[CorsRule], origin: str, method: str, headers: list[str]
) -> tuple[CorsRule, str] | None:
    """The first rule allowing this origin, method and every requested header, with the origin it matched."""
    for rule in rules:
        allowed = next((o for o in rule.origins if wildcard(o, origin)), None)
        if allowed is None or method not in rule.methods:
            continue
        if all(any(wildcard(a, h, fold=True) for a in rule.headers) for h in headers):
            return rule, allowed
    return None


def cors_headers(rule: CorsRule, allowed_origin: str, origin: str) -> dict[str, str]:
    headers = {
        "Access-Control-Allow-Origin": "*" if allowed_origin == "*" else origin,
        "Access-Control-Allow-Methods": ", ".join(rule.methods),
        "Vary": "Origin, Access-Control-Request-Headers, Access-Control-Request-Method",
    }
    if allowed_origin != "*":
        headers["Access-Control-Allow-Credentials"] = "true"
    if rule.expose:
        headers["Access-Control-Expose-Headers"] = ", ".join(rule.expose)
    if rule.max_age_s is not None:
        headers["Access-Control-Max-Age"] = str(rule.max_age_s)
    return headers


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _bucket(self) -> str:
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]")
        try:
            ipaddress.ip_address(host)
        except ValueError:
            if "." in host and not host.startswith("s3."):  # virtual-hosted style: bucket.s3.example
                return host.split(".", 1)[0]
        return urlsplit(self.path).path.lstrip("/").split("/", 1)[0]

    def _rules(self, bucket: str) -> list[CorsRule] | None:
        """The bucket's CORS rules; None when it has none (or does not exist)."""
        status, body = self.server.upstream_get(f"/{bucket}?cors")
        return parse_rules(body) if status == 200 else None

    def _error(self, status: int, code: str, message: str) -> None:
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>{message}</Message></Error>"
        ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_OPTIONS(self) -> None:
        # Never forwarded: moto's own preflight answer allows whatever its first rule names.
        self._body()
        origin = self.headers.get("Origin")
        method = self.headers.get("Access-Control-Request-Method")
        if not origin or not method:
            self._error(400, "BadRequest", "Insufficient information. Origin request header needed.")
            return
        rules = self._rules(self._bucket())
        if not rules:
            self._error(403, "AccessForbidden", NOT_ENABLED)
            return
        requested = [h.strip() for h in self.headers.get("Access-Control-Request-Headers", "").split(",")]
        requested = [h for h in requested if h]
        found = matching_rule(rules, origin, method, requested)
        if found is None:
            self._error(403, "AccessForbidden", NOT_ALLOWED)
            return
        headers = cors_headers(*found, origin)
        if requested:
            headers["Access-Control-Allow-Headers"] = ", ".join(requested)
        self.send_response(200)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(parts)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _forward(self) -> None:
        body = self._body()
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        headers.pop("Content-Length", None)
        if body or self.command in ("PUT", "POST"):
            headers["Content-Length"] = str(len(body))
        upstream = self.server.connect()
        try:
            upstream.request(self.command, self.path, body=body, headers=headers)
            answer = upstream.getresponse()
            self._relay(answer)
        finally:
            upstream.close()

    def _relay(self, answer: http.client.HTTPResponse) -> None:
        origin = self.headers.get("Origin")
        extra: dict[str, str] = {}
        if origin and (rules := self._rules(self._bucket())):
            found = matching_rule(rules, origin, self.command, [])
            extra = cors_headers(*found, origin) if found else {}
        self.send_response(answer.status, answer.reason)
        length = answer.getheader("Content-Length")
        for name, value in answer.getheaders():
            lower = name.lower()
            if lower.startswith("access-control-") or lower in HOP_BY_HOP or lower == "vary":
                continue
            self.send_header(name, value)
        for name, value in extra.items():
            self.send_header(name, value)
        bodiless = self.command == "HEAD" or answer.status in (204, 304)
        chunked = length is None and not bodiless
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if bodiless:
            return
        while data := answer.read(CHUNK_BYTES):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _forward


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Browsers drop connections mid-answer when they seek or stop: not worth a traceback.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(*self.upstream, timeout=60)

    def upstream_get(self, path: str) -> tuple[int, bytes]:
        connection = self.connect()
        try:
            connection.request("GET", path)
            answer = connection.getresponse()
            return answer.status, answer.read()
        finally:
            connection.close()


class StrictS3:
    """The front on a free loopback port; `endpoint` is what clients (and presigned URLs) use."""

    def __init__(self, upstream: str) -> None:
        self._server = _Server(upstream)
        host, port = self._server.server_address[:2]
        self.endpoint = f"http://{host!s}:{port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="strict-s3", daemon=True)

    def start(self) -> StrictS3:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="session")
def strict_s3_endpoint(moto_endpoint: str) -> Iterator[str]:
    """An S3 endpoint whose buckets answer CORS as fresh S3 buckets do (moto's data behind it)."""
    front = StrictS3(moto_endpoint).start()
    yield front.endpoint
    front.stop()
