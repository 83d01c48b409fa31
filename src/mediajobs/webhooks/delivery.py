"""The `webhook.deliver` job: one signed POST of a delivery's body through the egress guard, logged.

Retries follow the Standard Webhooks (Svix) schedule through the engine's own `retrying` state, so a waiting
delivery holds no worker slot: attempts now, then after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h (about
27 h in all). The schedule scales with MEDIAJOBS_RETRY_BACKOFF_BASE_S (as written at its default of 2 s).
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict

from mediajobs.config import Settings
from mediajobs.db.models import Job, WebhookAttempt, WebhookDelivery, WebhookEndpoint, utcnow
from mediajobs.egress import egress_guard
from mediajobs.errors import ForbiddenAddress, InvalidUrl, PermanentError, TransientError
from mediajobs.jobs import states
from mediajobs.jobs.context import JobContext
from mediajobs.jobs.hooks import Services
from mediajobs.jobs.registry import job_kind
from mediajobs.webhooks import endpoints, signing
from mediajobs.webhooks.events import DELIVER_KIND

log = logging.getLogger(__name__)

SCHEDULE_S = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
TIMEOUT_S = 10.0
MAX_RESPONSE_BYTES = 64 * 1024
EXCERPT_CHARS = 500
USER_AGENT = "mediajobs-webhooks/1"


class DeliverParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    delivery_id: str
    redeliver: bool = False


@dataclass
class Outcome:
    """What one attempt got: a status (with the start of the body) or an error."""

    duration_ms: float
    status_code: int | None = None
    excerpt: str | None = None
    error: dict[str, str] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.status_code is not None and 200 <= self.status_code < 300


@dataclass
class Answer:
    """What the endpoint sent back so far: its status, its Content-Encoding and the raw start of its body."""

    status: int | None = None
    encoding: str = ""
    raw: bytes = b""


def post(settings: Settings, endpoint: WebhookEndpoint, delivery: WebhookDelivery) -> Outcome:
    """Send the delivery once, through the egress guard: done or given up within TIMEOUT_S, a capped read."""
    body = delivery.body.encode()
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        # Asked for, not relied on: whatever comes back, at most MAX_RESPONSE_BYTES of raw body are read.
        "accept-encoding": "identity",
        **signing.signed_headers(endpoint.secret, msg_id=delivery.id, timestamp=int(time.time()), body=body),
    }
    answer, failed = Answer(), None
    with egress_guard(settings) as guard:
        started = time.monotonic()
        try:
            asyncio.run(_exchange(guard.proxy_url, endpoint.url, body, headers, answer))
        except TimeoutError:
            said = f"answered {answer.status} but did not finish" if answer.status else "did not answer"
            failed = _error("timeout", f"the endpoint {said} within {TIMEOUT_S:g} s")
        except httpx.HTTPError as exc:
            failed = _error("source_unreachable", f"could not deliver: {type(exc).__name__}")
        except httpx.InvalidURL as exc:  # registered before URLs were checked as they are now
            return Outcome(0.0, error=_error(InvalidUrl.code, f"the endpoint's URL is not valid: {exc}"))
        # What the proxy saw outranks what the client saw: for plain http its own 403 or 502 would otherwise
        # pass for the endpoint's answer.
        failure, unreachable = guard.failure(), guard.unreachable()
    duration_ms = (time.monotonic() - started) * 1000.0
    if isinstance(failure, ForbiddenAddress):
        # Nothing about the refused destination (open, closed, answering): it was never contacted.
        refused = "the endpoint's address or port is one webhooks may not reach"
        return Outcome(duration_ms, error=_error(failure.code, refused))
    if unreachable is not None:
        return Outcome(duration_ms, error=_error(unreachable.code, unreachable.message))
    if answer.status is None:
        return Outcome(duration_ms, error=failed or _error("source_unreachable", "no answer"))
    status = answer.status
    outcome = Outcome(duration_ms, status_code=status, excerpt=excerpt(answer.raw, answer.encoding))
    if failed is not None:
        outcome.error = failed
    elif failure is not None:
        outcome.error = _error(failure.code, failure.message)
    elif not outcome.ok:
        hint = " (redirects are not followed)" if 300 <= status < 400 else ""
        outcome.error = _error("http_status", f"the endpoint answered {status}{hint}")
    return outcome


async def _exchange(proxy_url: str, url: str, body: bytes, headers: dict[str, str], answer: Answer) -> None:
    """POST and read the answer's raw start into `answer`; TimeoutError past TIMEOUT_S of wall time.

    httpx's own timeout counts each read alone (a byte every few seconds never trips it), so the whole
    exchange runs under one deadline.
    """
    async with asyncio.timeout(TIMEOUT_S):
        # Redirects are not followed: a POST turned into a GET delivers nothing, and a receiver that moved
        # should be registered under its new URL.
        async with (
            httpx.AsyncClient(
                proxy=proxy_url, timeout=TIMEOUT_S, follow_redirects=False, trust_env=False
            ) as client,
            client.stream("POST", url, content=body, headers=headers) as response,
        ):
            answer.status = response.status_code
            answer.encoding = response.headers.get("content-encoding", "")
            # Raw bytes: decoding here would inflate a compressed answer before any cap applies.
            async for chunk in response.aiter_raw():
                answer.raw += chunk
                if len(answer.raw) >= MAX_RESPONSE_BYTES:
                    break  # the rest is never read; closing the stream drops the connection
    answer.raw = answer.raw[:MAX_RESPONSE_BYTES]


def excerpt(raw: bytes, encoding: str) -> str:
    """The start of an answer for the log, its content codings undone with the output capped at each one."""
    data = raw
    for coding in reversed([c.strip().lower() for c in encoding.split(",") if c.strip()]):
        if coding == "identity":
            continue
        if coding not in ("gzip", "x-gzip", "deflate"):
            return f"({coding}-encoded answer, not shown)"
        # gzip, or deflate as zlib data (what servers send) or raw (what some send): wbits says which.
        wbits = 31 if coding != "deflate" else (15 if data[:1] == b"\x78" else -15)
        try:
            data = zlib.decompressobj(wbits).decompress(data, MAX_RESPONSE_BYTES)
        except zlib.error:
            return f"(an undecodable {coding} answer)"
    return data.decode(errors="replace")[:EXCERPT_CHARS]


def _error(code: str, message: str) -> dict[str, str]:
    return {"code": code, "message": message}


def _delivery_ended(job: Job, services: Services) -> None:
    """A delivery job that ended short (cancelled, timed out, crashed) leaves its delivery failed."""
    if job.state == states.SUCCEEDED:
        return
    db = services.db
    delivery_id = (job.params or {}).get("delivery_id")
    delivery = endpoints.find_delivery(db, delivery_id) if isinstance(delivery_id, str) else None
    # A redelivery may have replaced this job already: only the delivery's current job decides its state.
    if delivery is not None and delivery.job_id == job.id and delivery.state != endpoints.SUCCEEDED:
        endpoints.set_delivery(db, delivery.id, state=endpoints.FAILED)


@job_kind(
    DELIVER_KIND,
    params=DeliverParams,
    queue="io",
    soft_time_limit_s=120,
    max_attempts=len(SCHEDULE_S) + 1,
    public=False,
    retry_delays_s=SCHEDULE_S,
    on_end=_delivery_ended,
)
def deliver(ctx: JobContext, params: DeliverParams) -> dict[str, Any]:
    """POST one webhook delivery to its endpoint; a non-2xx answer or no answer is retried."""
    delivery = endpoints.find_delivery(ctx.db, params.delivery_id)
    endpoint = endpoints.find_endpoint(ctx.db, delivery.endpoint_id) if delivery else None
    if delivery is None or endpoint is None:
        return {"skipped": "the endpoint was deleted"}
    if not endpoint.enabled and not params.redeliver:
        endpoints.set_delivery(ctx.db, delivery.id, state=endpoints.FAILED)
        return {"skipped": f"the endpoint is disabled: {endpoint.disabled_reason}"}
    at = utcnow()
    outcome = post(ctx.settings, endpoint, delivery)
    code = (outcome.error or {}).get("code")
    permanent = outcome.status_code == 410 or code in (ForbiddenAddress.code, InvalidUrl.code)
    if outcome.ok:
        state = endpoints.SUCCEEDED
    else:
        state = endpoints.FAILED if permanent or ctx.is_last_attempt else endpoints.RETRYING
    attempt = WebhookAttempt(
        delivery_id=delivery.id,
        at=at,
        status_code=outcome.status_code,
        error=outcome.error,
        duration_ms=outcome.duration_ms,
        response_excerpt=outcome.excerpt,
    )
    switch: tuple[str, bool, str | None] | None = None
    if outcome.ok and not endpoint.enabled:  # a redelivery that got through: the receiver is back
        switch = (endpoint.id, True, None)
    elif outcome.status_code == 410:
        reason = f"the endpoint answered 410 Gone on {at.isoformat()}; redeliver to enable it again"
        switch = (endpoint.id, False, reason)
    endpoints.record_attempt(ctx.db, attempt, state=state, endpoint=switch)
    if outcome.ok:
        return {"delivery_id": delivery.id, "status_code": outcome.status_code}
    assert outcome.error is not None
    message = outcome.error["message"]
    if outcome.status_code == 410:
        raise PermanentError(f"{message}: the endpoint is disabled", code="endpoint_gone")
    if code == InvalidUrl.code:
        raise InvalidUrl(message)
    if permanent:
        raise ForbiddenAddress(message)
    raise TransientError(message, code=outcome.error["code"])
