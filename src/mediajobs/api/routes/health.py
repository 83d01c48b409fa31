"""/healthz, /readyz and /metrics."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import redis
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from mediajobs import nodes
from mediajobs.api.openapi import problem, problems, success
from mediajobs.api.problems import Problem, problem_response
from mediajobs.api.schemas import Health, NotReady, Readiness

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])
# The storage check writes a probe object: once per this many seconds, not on every probe or scrape.
STORAGE_CHECK_TTL_S = 30.0


@router.get("/healthz", response_model=None, responses=success(200, "the process is alive", Health))
def healthz() -> dict[str, str]:
    return {"status": "ok"}


class StorageCheck:
    """The storage write check, its outcome remembered for STORAGE_CHECK_TTL_S (a failure too)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ok = False
        self.checked_at = float("-inf")

    def __call__(self, request: Request) -> bool:
        with self.lock:
            if time.monotonic() - self.checked_at >= STORAGE_CHECK_TTL_S:
                self.ok = _passes("storage", lambda: request.app.state.storage().check())
                self.checked_at = time.monotonic()
            return self.ok


def _passes(part: str, check: Any) -> bool:
    """Run one check; what went wrong goes to the server log only (it names hosts, users, buckets)."""
    try:
        check()
        return True
    except Exception as exc:
        log.warning("readiness: %s is not reachable: %s: %s", part, type(exc).__name__, exc)
        return False


def _ping_broker(url: str) -> None:
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    finally:
        client.close()


def check_parts(request: Request) -> dict[str, str]:
    state = request.app.state
    if not hasattr(state, "storage_check"):
        state.storage_check = StorageCheck()
    results = {
        "database": _passes("database", state.db.ping),
        "broker": _passes("broker", lambda: _ping_broker(state.settings.broker_client_url)),
        "storage": state.storage_check(request),
    }
    return {name: "ok" if ok else "unreachable" for name, ok in results.items()}


@router.get(
    "/readyz",
    response_model=None,
    responses=success(200, "database, broker and storage are reachable", Readiness)
    | {503: {"model": NotReady, "description": "not ready: `failing` names the unreachable parts"}},
)
def readyz(request: Request) -> Any:
    checks = check_parts(request)
    failing = [name for name, result in checks.items() if result != "ok"]
    # Other processes' storage failures, from their node records: worth seeing here, but this API is still
    # ready to serve, so they do not make it a 503 (a load balancer would take a healthy API out).
    troubled: list[dict[str, Any]] = []
    if checks["database"] == "ok":
        _passes("database", lambda: troubled.extend(nodes.storage_problems(request.app.state.db)))
    if failing:
        return problem_response(
            503,
            f"not ready: {', '.join(failing)} unreachable; the server log says why",
            slug="not-ready",
            extra={"checks": checks, "failing": failing, "storage_problems": troubled},
        )
    return JSONResponse({"status": "ok", "checks": checks, "storage_problems": troubled})


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses=success(200, "Prometheus text format")
    | problem(404, "metrics are served on another port (MEDIAJOBS_METRICS_PORT)")
    | problems(503),  # its numbers come from the database
)
def metrics(request: Request) -> Response:
    port = request.app.state.settings.metrics_port
    if port:
        raise Problem(
            404, f"metrics are served on 127.0.0.1:{port} (MEDIAJOBS_METRICS_PORT)", slug="not-found"
        )
    return Response(generate_latest(request.app.state.metrics_registry), media_type=CONTENT_TYPE_LATEST)
