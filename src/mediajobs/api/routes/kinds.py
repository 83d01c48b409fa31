"""/api/v1/kinds: the registered job kinds, each with the JSON Schema of its params."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from mediajobs.api.openapi import params_schema, success
from mediajobs.api.schemas import KindList
from mediajobs.jobs.registry import Kind, registry

router = APIRouter(prefix="/api/v1/kinds", tags=["kinds"])


def kind_public(kind: Kind) -> dict[str, Any]:
    return {
        "name": kind.name,
        "public": kind.public,
        "queue": kind.queue,
        "params_schema": params_schema(kind),
        "description": kind.description,
        "max_attempts": kind.max_attempts,
        "priority": kind.priority,
        "soft_time_limit_s": kind.soft_time_limit_s,
        "time_limit_s": kind.time_limit_s,
    }


@router.get(
    "",
    response_model=None,
    responses=success(200, "every registered kind; only public ones may be submitted", KindList),
)
def list_kinds() -> dict[str, Any]:
    """Every kind this API loaded (built-in and MEDIAJOBS_KIND_MODULES), public ones first, by name."""
    kinds = sorted(registry.all(), key=lambda kind: (not kind.public, kind.name))
    return {"items": [kind_public(kind) for kind in kinds]}
