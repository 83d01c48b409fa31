"""/healthz, /readyz and /metrics."""

from __future__ import annotations

from typing import Any

import redis
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from mediajobs.api.deps import DbDep, SettingsDep
from mediajobs.api.problems import problem_response

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


def check_parts(request: Request) -> dict[str, str]:
    settings = request.app.state.settings
    checks: dict[str, str] = {}
    try:
        request.app.state.db.ping()
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unreachable: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    try:
        client = redis.Redis.from_url(
            settings.effective_broker_url, socket_connect_timeout=1, socket_timeout=1
        )
        client.ping()
        client.close()
        checks["broker"] = "ok"
    except Exception as exc:
        checks["broker"] = f"unreachable: {exc}"
    try:
        request.app.state.storage().check()
        checks["storage"] = "ok"
    except Exception as exc:
        checks["storage"] = f"unreachable: {exc}"
    return checks


@router.get("/readyz")
def readyz(request: Request) -> Any:
    checks = check_parts(request)
    failing = [name for name, result in checks.items() if result != "ok"]
    if failing:
        detail = "; ".join(f"{name} {checks[name]}" for name in failing)
        return problem_response(
            503, f"not ready: {detail}", slug="not-ready", extra={"checks": checks, "failing": failing}
        )
    return JSONResponse({"status": "ok", "checks": checks})


@router.get("/metrics")
def metrics(request: Request, db: DbDep, settings: SettingsDep) -> Response:
    return Response(generate_latest(request.app.state.metrics_registry), media_type=CONTENT_TYPE_LATEST)
