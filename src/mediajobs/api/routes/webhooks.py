"""/api/v1/webhooks: register endpoints, look at and remove them, read their delivery log, redeliver."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import update
from sqlalchemy.orm import Session

from mediajobs.api import urls
from mediajobs.api.deps import DbDep, ServicesDep, SettingsDep
from mediajobs.api.openapi import HTTP_URL, link, problem, problems, success
from mediajobs.api.problems import invalid
from mediajobs.api.schemas import DeliveryPage, DeliveryPublic, WebhookCreated, WebhookPage, WebhookPublic
from mediajobs.db.models import Job, WebhookDelivery, utcnow
from mediajobs.errors import NotFound
from mediajobs.jobs import lifecycle, rows, states
from mediajobs.jobs.hooks import Services
from mediajobs.webhooks import endpoints
from mediajobs.webhooks.endpoints import EVENTS
from mediajobs.webhooks.events import DELIVER_KIND

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"])
Limit = Annotated[int, Query(ge=1, le=500)]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # The schema extras document the checks made below for clients; they are not what enforces them.
    url: str = Field(
        min_length=1,
        max_length=2048,
        description="an http(s) URL on a public address",
        json_schema_extra={"pattern": HTTP_URL},
    )
    events: list[str] = Field(
        min_length=1,
        max_length=len(EVENTS),
        description=", ".join(EVENTS),
        json_schema_extra={"items": {"type": "string", "enum": list(EVENTS)}},
    )


@router.post(
    "",
    status_code=201,
    response_model=None,
    responses=success(
        201,
        "the endpoint, with its secret (shown only here)",
        WebhookCreated,
        located=True,
        links=link("get_webhook", "delete_webhook", "list_deliveries", webhook_id="$response.body#/id"),
        headers=urls.DOCUMENTED,
    )
    | problem(422, "a URL webhooks may not call, or unknown event names"),
)
def create_webhook(body: WebhookCreate, db: DbDep, settings: SettingsDep) -> JSONResponse:
    unknown = [name for name in body.events if name not in EVENTS]
    if unknown:
        raise invalid(["events"], f"unknown event(s) {', '.join(unknown)}; valid events: {', '.join(EVENTS)}")
    # The early check imports get (webhooks share their egress policy); every delivery checks again.
    url, headers = urls.checked_url(body.url, settings, later="each delivery checks it again")
    endpoint = endpoints.create_endpoint(db, url=url, events=list(dict.fromkeys(body.events)))
    headers["Location"] = f"/api/v1/webhooks/{endpoint.id}"
    created = endpoints.endpoint_public(endpoint, with_secret=True)
    return JSONResponse(created, status_code=201, headers=headers)


@router.get(
    "",
    response_model=None,
    responses=success(200, "newest first", WebhookPage) | problem(422, "a bad limit or cursor"),
)
def list_webhooks(db: DbDep, limit: Limit = 50, cursor: str | None = None) -> dict[str, Any]:
    try:
        page = endpoints.list_endpoints(db, limit=limit, cursor=cursor)
    except ValueError as exc:
        raise invalid(["cursor"], str(exc)) from exc
    return {"items": [endpoints.endpoint_public(e) for e in page.items], "next_cursor": page.next_cursor}


@router.get(
    "/{webhook_id}",
    response_model=None,
    responses=success(200, "the endpoint", WebhookPublic) | problems(404),
)
def get_webhook(webhook_id: str, db: DbDep) -> dict[str, Any]:
    return endpoints.endpoint_public(endpoints.get_endpoint(db, webhook_id))


@router.delete("/{webhook_id}", status_code=204, responses=success(204, "removed") | problems(404))
def delete_webhook(webhook_id: str, db: DbDep) -> Response:
    endpoints.delete_endpoint(db, webhook_id)
    return Response(status_code=204)


@router.get(
    "/{webhook_id}/deliveries",
    response_model=None,
    responses=success(200, "newest first", DeliveryPage)
    | problems(404)
    | problem(422, "a bad limit or cursor"),
)
def list_deliveries(
    webhook_id: str, db: DbDep, limit: Limit = 50, cursor: str | None = None
) -> dict[str, Any]:
    endpoint = endpoints.get_endpoint(db, webhook_id)
    try:
        page = endpoints.list_deliveries(db, endpoint, limit=limit, cursor=cursor)
    except ValueError as exc:
        raise invalid(["cursor"], str(exc)) from exc
    return {"items": endpoints.deliveries_public(db, page.items), "next_cursor": page.next_cursor}


@router.get(
    "/{webhook_id}/deliveries/{delivery_id}",
    response_model=None,
    responses=success(200, "the delivery and its attempts", DeliveryPublic) | problems(404),
)
def get_delivery(webhook_id: str, delivery_id: str, db: DbDep) -> dict[str, Any]:
    delivery = endpoints.get_delivery(db, endpoints.get_endpoint(db, webhook_id), delivery_id)
    return endpoints.deliveries_public(db, [delivery])[0]


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/redeliver",
    status_code=202,
    response_model=None,
    responses=success(202, "the delivery, sent again as one attempt", DeliveryPublic) | problems(404),
)
def redeliver(webhook_id: str, delivery_id: str, db: DbDep, services: ServicesDep) -> JSONResponse:
    """Send the delivery again now, as one attempt; a retry still waiting for its turn is called off."""
    endpoint = endpoints.get_endpoint(db, webhook_id)
    delivery = endpoints.get_delivery(db, endpoint, delivery_id)
    if delivery.job_id is not None:
        _call_off(services, delivery.job_id)

    def with_job(session: Session, job: Job) -> None:
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery.id)
            .values(state=endpoints.PENDING, job_id=job.id, updated_at=utcnow())
        )

    params = {"delivery_id": delivery.id, "redeliver": True}
    lifecycle.submit(services, kind=DELIVER_KIND, params=params, max_attempts=1, with_job=with_job)
    fresh = endpoints.get_delivery(db, endpoint, delivery.id)
    return JSONResponse(endpoints.deliveries_public(db, [fresh])[0], status_code=202)


def _call_off(services: Services, job_id: str) -> None:
    """Cancel a delivery job that is still waiting, so that the redelivery is not followed by a duplicate."""
    try:
        job = rows.get_job(services.db, job_id)
    except NotFound:
        return
    if job.state in (states.QUEUED, states.RETRYING):  # a running attempt is left to finish
        lifecycle.cancel(services, job.id)
