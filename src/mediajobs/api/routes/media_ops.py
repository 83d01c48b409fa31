"""Operations on a ready asset: mask and remove frames (each makes a derived asset), analyze, reprocess."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from mediajobs.api.deps import DbDep
from mediajobs.api.problems import Problem, field_error
from mediajobs.api.routes.media import (
    IdempotencyHeader,
    Step,
    job_answer,
    media_answer,
    record_and_publish,
    replay_for,
)
from mediajobs.db.session import Database
from mediajobs.errors import InvalidParams
from mediajobs.jobs.schemas import public as job_public
from mediajobs.media import assets
from mediajobs.media.cut import merge_ranges
from mediajobs.media.mask import Region, clip_regions

router = APIRouter(prefix="/api/v1/media", tags=["media operations"])


class RegionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    x: int = Field(ge=0)
    y: int = Field(ge=0)
    w: int = Field(gt=0)
    h: int = Field(gt=0)
    start: float = Field(default=0.0, ge=0)
    end: float | None = Field(default=None, ge=0)
    style: Literal["blur", "black", "pixelate"] = "blur"

    @model_validator(mode="after")
    def _times(self) -> RegionIn:
        if self.end is not None and self.end <= self.start:
            raise ValueError("end must be after start (or null for 'until the end')")
        return self


class MaskCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    regions: list[RegionIn] = Field(min_length=1, max_length=200)
    pipeline: list[Step] | None = None


class RangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: float = Field(ge=0)
    end: float = Field(gt=0)

    @model_validator(mode="after")
    def _order(self) -> RangeIn:
        if self.end <= self.start:
            raise ValueError("end must be after start (ranges are [start, end) in seconds)")
        return self


class RemoveFramesCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ranges: list[RangeIn] = Field(min_length=1, max_length=1000)
    pipeline: list[Step] | None = None


class ReprocessCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pipeline: list[Step] | None = None


def _ready_source(db: Database, media_id: str) -> Any:
    media = assets.get_media(db, media_id)
    if media.state != assets.READY:
        raise Problem(
            409, f"media {media.id} is {media.state}; operations need a ready asset", slug="conflict"
        )
    if not media.probe:
        raise Problem(409, f"media {media.id} has no probe data; reprocess it first", slug="conflict")
    return media


def _param_problem(exc: InvalidParams, field: str) -> Problem:
    found = re.search(rf"{field}\[(\d+)\]", str(exc))
    loc: list[str | int] = [field, int(found[1])] if found else [field]
    return Problem(422, str(exc), errors=[field_error(loc, str(exc))], slug="validation")


def _derive(
    request: Request,
    db: Database,
    source: Any,
    *,
    kind: str,
    params: dict[str, Any],
    pipeline: Sequence[str] | None,
    description: dict[str, Any],
    scope: str,
    key: str | None,
) -> JSONResponse:
    derived = assets.new_media(
        source={"parent_id": source.id, **description}, parent_id=source.id, pipeline=pipeline
    )
    answer = lambda job: {"job": job_public(job), "media": media_answer(request, derived, [job.id])}  # noqa: E731
    job = record_and_publish(
        request,
        db,
        media=derived,
        kind=kind,
        params={"source_id": source.id, **params},
        media_id=derived.id,
        scope=scope,
        key=key,
        answer=answer,
    )
    return JSONResponse(answer(job), status_code=202, headers={"Location": f"/api/v1/jobs/{job.id}"})


@router.post("/{media_id}/mask", status_code=202)
def mask(
    media_id: str, body: MaskCreate, request: Request, db: DbDep, idempotency_key: IdempotencyHeader = None
) -> JSONResponse:
    scope, key, replayed = replay_for(request, db, idempotency_key)
    if replayed is not None:
        return replayed
    source = _ready_source(db, media_id)
    probe = source.probe
    if not probe.get("width") or not probe.get("height"):
        raise Problem(409, f"media {source.id} has no video to mask", slug="conflict")
    regions = [Region(**r.model_dump()) for r in body.regions]
    try:
        clip_regions(regions, probe["width"], probe["height"], probe["duration"])
    except InvalidParams as exc:
        raise _param_problem(exc, "regions") from exc
    regions_json = [r.model_dump() for r in body.regions]
    return _derive(
        request,
        db,
        source,
        kind="media.mask",
        params={"regions": regions_json},
        pipeline=body.pipeline,
        description={"type": "mask", "regions": regions_json},
        scope=scope,
        key=key,
    )


@router.post("/{media_id}/remove-frames", status_code=202)
def remove_frames(
    media_id: str,
    body: RemoveFramesCreate,
    request: Request,
    db: DbDep,
    idempotency_key: IdempotencyHeader = None,
) -> JSONResponse:
    scope, key, replayed = replay_for(request, db, idempotency_key)
    if replayed is not None:
        return replayed
    source = _ready_source(db, media_id)
    ranges = [(r.start, r.end) for r in body.ranges]
    try:
        merge_ranges(ranges, source.probe["duration"], fps=source.probe.get("fps"))
    except InvalidParams as exc:
        raise _param_problem(exc, "ranges") from exc
    ranges_json = [r.model_dump() for r in body.ranges]
    return _derive(
        request,
        db,
        source,
        kind="media.remove_frames",
        params={"ranges": ranges_json},
        pipeline=body.pipeline,
        description={"type": "remove_frames", "ranges": ranges_json},
        scope=scope,
        key=key,
    )


@router.post("/{media_id}/analyze", status_code=202)
def analyze(
    media_id: str, request: Request, db: DbDep, idempotency_key: IdempotencyHeader = None
) -> JSONResponse:
    scope, key, replayed = replay_for(request, db, idempotency_key)
    if replayed is not None:
        return replayed
    source = _ready_source(db, media_id)
    return job_answer(request, db, kind="media.analyze", params={}, media_id=source.id, scope=scope, key=key)


@router.post("/{media_id}/reprocess", status_code=202)
def reprocess(
    media_id: str,
    request: Request,
    db: DbDep,
    body: ReprocessCreate | None = None,
    idempotency_key: IdempotencyHeader = None,
) -> JSONResponse:
    scope, key, replayed = replay_for(request, db, idempotency_key)
    if replayed is not None:
        return replayed
    source = _ready_source(db, media_id)
    steps = (
        (body.pipeline if body and body.pipeline is not None else None)
        or source.pipeline
        or assets.DEFAULT_PIPELINE
    )
    return job_answer(
        request,
        db,
        kind="media.process",
        params={"pipeline": steps, "reprocess": True},
        media_id=source.id,
        scope=scope,
        key=key,
    )
