"""The one place errors become HTTP: RFC 9457 problem+json for everything the API refuses."""

from __future__ import annotations

import logging
import re
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi import routing as fastapi_routing
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from mediajobs.db.session import is_unreachable
from mediajobs.errors import Conflict, InvalidParams, MediajobsError, NotFound
from mediajobs.jobs.lifecycle import ParamsRejected

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"
# What a 503 for an unreachable database tells clients to wait; a restart of PostgreSQL takes a few seconds.
DATABASE_RETRY_AFTER_S = 5


class Problem(Exception):
    """An HTTP error answer with a specific detail (and field errors for 422)."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        slug: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors
        self.slug = slug
        self.headers = headers


def field_error(loc: list[str | int], message: str, type_: str = "value_error") -> dict[str, Any]:
    return {"loc": loc, "field": ".".join(str(p) for p in loc), "message": message, "type": type_}


def invalid(loc: list[str | int], message: str) -> Problem:
    """A 422 for one bad field."""
    return Problem(422, f"{'.'.join(str(p) for p in loc)}: {message}", errors=[field_error(loc, message)])


def item_problem(exc: InvalidParams, field: str) -> Problem:
    """The 422 for a refused list `field` whose message names the item as `field[i]` (the toolkit's way)."""
    found = re.search(rf"{re.escape(field)}\[(\d+)\]", str(exc))
    loc: list[str | int] = [field, int(found[1])] if found else [field]
    return Problem(422, str(exc), errors=[field_error(loc, str(exc))], slug="validation")


def params_problem(exc: ParamsRejected) -> Problem:
    """The 422 naming each field of `params` that does not fit the kind's model."""
    errors = [
        field_error(["params", *err["loc"]], err["msg"], err.get("type", "value_error")) for err in exc.errors
    ]
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return Problem(422, f"invalid params for {exc.kind}: {detail}", errors=errors, slug="validation")


def _printable(value: Any) -> Any:
    """`value` with lone surrogates (from `\\ud800` in a JSON body) spelled out, so the answer encodes."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, list):
        return [_printable(item) for item in value]
    if isinstance(value, dict):
        return {_printable(k): _printable(v) for k, v in value.items()}
    return value


def problem_response(
    status: int,
    detail: str,
    *,
    errors: list[dict[str, Any]] | None = None,
    slug: str | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    title = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    body: dict[str, Any] = {
        "type": f"urn:mediajobs:problem:{slug}" if slug else "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = errors
    if extra:
        body.update(extra)
    # Details quote what the client sent, which may not be encodable as it came.
    return JSONResponse(_printable(body), status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    errors = []
    for err in exc.errors():
        loc = list(err.get("loc", ()))
        where = loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc
        message = err.get("msg", "invalid value")
        if err.get("type") == "json_invalid":
            where = ["body"]
            message = f"the body is not valid JSON ({err.get('ctx', {}).get('error', 'syntax error')})"
        errors.append(
            {
                **field_error(where or ["body"], message, err.get("type", "value_error")),
                "in": loc[0] if loc else "body",
            }
        )
    return errors


def _allowed_methods(request: Request) -> str | None:
    """Every method the routes at this path take (Starlette's 405 names only the first route's)."""
    # FastAPI 0.16x nests included routers; `iter_route_contexts` walks them as its get_openapi does.
    walk = getattr(fastapi_routing, "iter_route_contexts", None)
    routes: Any = walk(request.app.routes) if walk is not None else request.app.routes
    methods: set[str] = set()
    for route in routes:
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods)) or None


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(_: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc.status, exc.detail, errors=exc.errors, slug=exc.slug, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _validation_errors(exc)
        if any(e["type"] == "json_invalid" for e in errors):
            return problem_response(400, errors[0]["message"], errors=errors, slug="malformed-json")
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return problem_response(422, detail, errors=errors, slug="validation")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 404 and detail == "Not Found":
            detail = "no such resource; check the URL"
        if exc.status_code == 405:
            detail = "this method is not allowed on this resource"
            if allowed := _allowed_methods(request):
                headers["Allow"] = allowed
                detail = f"this method is not allowed on this resource; it takes {allowed}"
        return problem_response(exc.status_code, detail, headers=headers or None)

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound) -> JSONResponse:
        return problem_response(404, str(exc), slug="not-found")

    @app.exception_handler(Conflict)
    async def _conflict(_: Request, exc: Conflict) -> JSONResponse:
        return problem_response(409, str(exc), slug="conflict")

    @app.exception_handler(MediajobsError)
    async def _domain(_: Request, exc: MediajobsError) -> JSONResponse:
        return problem_response(422, str(exc), slug=exc.code)

    @app.exception_handler(SQLAlchemyError)
    async def _database(request: Request, exc: SQLAlchemyError) -> JSONResponse:
        if isinstance(exc, DataError) and "NUL" in str(exc.orig):
            # PostgreSQL stores no NUL in text (SQLite does): the client's text, not a bug of ours.
            return problem_response(
                422,
                "a text value in the request contains a NUL character (\\u0000 or %00), "
                "which cannot be stored; remove it",
                slug="nul-character",
            )
        if not is_unreachable(exc):
            return await _crash(request, exc)
        # An outage, not a bug: one calm line, no traceback.
        log.warning(
            "database unreachable on %s %s: %s", request.method, request.url.path, exc.__cause__ or exc
        )
        return problem_response(
            503,
            "the database is unreachable right now; try again in a few seconds",
            slug="database-unavailable",
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
        )

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(500, "internal error; this is a bug, the server log has the details")
