"""Request body limits: JSON bodies are small; uploads have their own limit, enforced while streaming."""

from __future__ import annotations

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mediajobs.api.problems import problem_response


class BodyLimit:
    """413 for bodies over `max_bytes`, by Content-Length up front or by counting chunked bodies."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        exempt_suffixes: tuple[str, ...] = (),
        exempt_prefixes: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.exempt_suffixes = exempt_suffixes
        self.exempt_prefixes = exempt_prefixes

    def _exempt(self, path: str) -> bool:
        return path.rstrip("/").endswith(self.exempt_suffixes) or path.startswith(self.exempt_prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._exempt(scope["path"]):
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                response = problem_response(
                    413,
                    f"request body of {int(value)} bytes is over the limit of {limit} bytes",
                    slug="too-large",
                )
                await response(scope, receive, send)
                return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise HTTPException(413, f"request body is over the limit of {limit} bytes")
            return message

        await self.app(scope, counting_receive, send)
