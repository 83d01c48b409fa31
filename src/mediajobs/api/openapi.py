"""The OpenAPI description: every status each route can answer, problem+json for errors, kinds' params.

Routes declare what only they answer (`responses=problems(404, 409)`); `describe` adds what every route of a
class answers because of the middleware and the error handlers (Host check, API key, cross-site and
content-type refusals, body limit, malformed JSON, database outage), so no decorator repeats those.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI, routing
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from mediajobs.api.deps import get_db_dep
from mediajobs.api.problems import PROBLEM_JSON
from mediajobs.api.schemas import NotReady, Problem
from mediajobs.api.security import FILES, NON_JSON_PREFIXES, NON_JSON_SUFFIXES, PROBES, STATE_CHANGING
from mediajobs.config import Settings
from mediajobs.jobs.registry import Kind, registry

log = logging.getLogger(__name__)
REF = "#/components/schemas/"
# `responses=` of a route; loosely typed so that routes can `|` their own literal entries onto these.
Responses = dict[Any, Any]
WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


DESCRIPTIONS = {
    400: "malformed request",
    401: "missing or wrong API key (send `Authorization: Bearer <key>`)",
    403: "forbidden",
    404: "no such resource",
    409: "the resource is not in a state that allows this",
    413: "the request body is over the limit",
    415: "unsupported request body type",
    416: "the requested byte range is outside the file",
    422: "a parameter or a field of the body is invalid; `errors` names each",
    503: "the database is unreachable; try again after `Retry-After` seconds",
}
# What an import or webhook URL must look like (egress/urlcheck checks it, and the address, for real).
HTTP_URL = r"^[Hh][Tt][Tt][Pp][Ss]?://[^\s/?#]+"
IDEMPOTENCY_KEY = {
    "description": "the same key with the same payload on the same URL within 24 h answers with the first "
    "answer, creating nothing; with another payload it is a 422 (keys are scoped to the caller's API key)",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "\\S"},
}
RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}
LOCATION = {"Location": {"description": "where to look at what was created", "schema": {"type": "string"}}}
CHALLENGE = {"WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}}}


def problems(*statuses: int) -> Responses:
    """`responses=` entries for errors this route answers (problem+json), in general words."""
    return {status: {"model": Problem, "description": DESCRIPTIONS[status]} for status in statuses}


def problem(status: int, description: str) -> Responses:
    """A `responses=` entry for an error this route answers, in its own words."""
    return {status: {"model": Problem, "description": description}}


def retrying(status: int, description: str) -> Responses:
    """A `responses=` entry for an error that may pass: problem+json with `Retry-After`."""
    return {status: {"model": Problem, "description": description, "headers": RETRY_AFTER}}


def success(
    status: int,
    description: str,
    model: type[BaseModel] | None = None,
    *,
    located: bool = False,
    links: dict[str, Any] | None = None,
    content: dict[str, Any] | None = None,
    headers: dict[str, Any] | None = None,
) -> Responses:
    """A `responses=` entry for a success answer, its body documented (not filtered) by `model`."""
    entry: dict[str, Any] = {"description": description}
    if model is not None:
        entry["model"] = model
    if located or headers:
        entry["headers"] = (LOCATION if located else {}) | (headers or {})
    if links:
        entry["links"] = links
    if content:
        entry["content"] = content
    return {status: entry}


def link(*operation_ids: str, **parameters: str) -> dict[str, Any]:
    """OpenAPI links: where the id in this answer leads (`job_id="$response.body#/id"`)."""
    return {op: {"operationId": op, "parameters": parameters} for op in operation_ids}


JOB_LINKS = link("get_job", "cancel_job", "retry_job", "follow_job", job_id="$response.body#/id")


def _needs(dependant: Dependant, call: Any) -> bool:
    return dependant.call is call or any(_needs(sub, call) for sub in dependant.dependencies)


def _using_database(app: FastAPI) -> set[str]:
    """The operation ids of the routes that need the database (they answer 503 while it is out)."""
    # FastAPI 0.16x nests included routers; `iter_route_contexts` is how its own get_openapi walks them.
    walk = getattr(routing, "iter_route_contexts", None)
    routes: Iterable[Any] = walk(app.routes) if walk is not None else app.routes
    return {
        route.unique_id
        for route in routes
        if isinstance(getattr(route, "dependant", None), Dependant) and _needs(route.dependant, get_db_dep)
    }


def _shared(
    path: str, method: str, operation: dict[str, Any], settings: Settings, *, database: bool
) -> dict[str, str]:
    """The statuses this operation answers because of the middleware and error handlers, with why."""
    method = method.upper()
    api = path.startswith("/api/")
    json_body = "application/json" in operation.get("requestBody", {}).get("content", {})
    shared: dict[str, list[str]] = {}
    if path not in PROBES:
        shared.setdefault("400", []).append("the Host header is not one this server answers to")
    if json_body:
        shared.setdefault("400", []).append("the body is not valid JSON")
    if method in STATE_CHANGING:
        shared.setdefault("403", []).append("a cross-site request (Origin or Sec-Fetch-Site)")
    if method in WITH_BODY:
        shared["413"] = [DESCRIPTIONS[413]]
        if (
            api
            and not path.rstrip("/").endswith(NON_JSON_SUFFIXES)
            and not path.startswith(NON_JSON_PREFIXES)
        ):
            shared["415"] = ["a body type browsers send cross-site; send `Content-Type: application/json`"]
    if settings.api_key_list and (api or (path == "/metrics" and not settings.metrics_port)):
        shared["401"] = [DESCRIPTIONS[401]]
        if FILES.match(path):
            shared.setdefault("403", []).append(
                "a playback token that expired, was altered or is for another asset"
            )
    if database:
        shared["503"] = [DESCRIPTIONS[503]]
    return {status: "; or ".join(reasons) for status, reasons in shared.items()}


def _document_errors(
    path: str, method: str, operation: dict[str, Any], settings: Settings, *, database: bool
) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    for status, description in _shared(path, method, operation, settings, database=database).items():
        entry = responses.setdefault(status, {"description": description})
        if description not in entry["description"]:
            entry["description"] = f"{entry['description']}; or {description}"
        entry.setdefault("content", {"application/json": {}})
        if status == "401":
            entry.setdefault("headers", {}).update(CHALLENGE)
    if DESCRIPTIONS[503] in responses.get("503", {}).get("description", ""):
        responses["503"].setdefault("headers", {}).update(RETRY_AFTER)  # not /readyz's 503
    if "422" in responses and responses["422"].get("description") == "Validation Error":
        responses["422"]["description"] = DESCRIPTIONS[422]
    for status, entry in responses.items():
        content = entry.get("content", {})
        if status[0] == "2" and len(content) > 1 and content.get("application/json") == {"schema": {}}:
            del content["application/json"]  # FastAPI's default beside the types the route declared
        # Errors with a body are problem+json, whatever type FastAPI filed them under; a bare one (416) stays.
        if status[0] in "45" and content:
            schema: dict[str, Any] = next((c["schema"] for c in content.values() if c.get("schema")), {})
            if not schema or schema.get("$ref", "").endswith("/HTTPValidationError"):
                schema = {"$ref": f"{REF}Problem"}
            entry["content"] = {PROBLEM_JSON: {"schema": schema}}


def _pascal(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", name) if part)


def params_schema(kind: Kind, *, ref_template: str = "#/$defs/{model}") -> dict[str, Any]:
    """The JSON Schema of a kind's params; any object when its model has none (the API still validates)."""
    try:
        return kind.params.model_json_schema(ref_template=ref_template)
    except Exception as exc:  # a user's model with a type JSON Schema cannot express
        log.warning("kind %s: its params have no JSON Schema (%s); published as any object", kind.name, exc)
        return {"type": "object"}


def _publish_kinds(components: dict[str, Any]) -> None:
    """JobCreate becomes a oneOf over the public kinds, on `kind`, each with its own params schema."""
    base = components.get("JobCreate")
    kinds = [registry.get(name) for name in registry.names(public_only=True)]
    if base is None or not kinds:
        return
    variants: dict[str, str] = {}
    for kind in kinds:
        stem = _pascal(kind.name)
        while f"{stem}Job" in components:  # "a.b_c" and "a_b.c" would share a name
            stem += "X"
        # Nested models are named after the kind: two kinds' `Region` models may differ.
        schema = params_schema(kind, ref_template=f"{REF}{stem}Params{{model}}")
        for name, definition in schema.pop("$defs", {}).items():
            components[f"{stem}Params{name}"] = definition
        components[f"{stem}Params"] = {**schema, "title": f"{stem}Params"}
        properties = {
            "kind": {"type": "string", "const": kind.name},
            "params": {"$ref": f"{REF}{stem}Params"},
            **{k: v for k, v in base["properties"].items() if k not in ("kind", "params")},
        }
        components[f"{stem}Job"] = {
            "type": "object",
            "title": f"{stem}Job",
            "description": kind.description or f"a {kind.name} job",
            "properties": properties,
            "required": ["kind", "params"] if schema.get("required") else ["kind"],
            "additionalProperties": False,
        }
        variants[kind.name] = f"{REF}{stem}Job"
    components["JobCreate"] = {
        "title": "JobCreate",
        "description": "a job of one of the public kinds (GET /api/v1/kinds lists them with their params)",
        "oneOf": [{"$ref": ref} for ref in variants.values()],
        "discriminator": {"propertyName": "kind", "mapping": variants},
    }


def describe(app: FastAPI, settings: Settings) -> dict[str, Any]:
    """The whole OpenAPI description of `app`, as it runs with `settings` and the kinds it loaded."""
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components: dict[str, Any] = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (Problem, NotReady):
        found = model.model_json_schema(ref_template=f"{REF}{{model}}", mode="serialization")
        components.update(found.pop("$defs", {}))
        components.setdefault(model.__name__, found)
    database = _using_database(app)
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            uses_db = operation.get("operationId") in database
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "header" and parameter["name"] == "Idempotency-Key":
                    parameter.update(IDEMPOTENCY_KEY)
            _document_errors(path, method, operation, settings, database=uses_db)
            if "401" in operation["responses"]:
                operation["security"] = [{"apiKey": []}]
                if FILES.match(path):
                    operation["security"].append({"playbackToken": []})
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    _publish_kinds(components)
    if settings.api_key_list:
        schema["components"]["securitySchemes"] = {
            "apiKey": {"type": "http", "scheme": "bearer"},
            # The `?token=` that file URLs in the media JSON carry, so players need no key.
            "playbackToken": {"type": "apiKey", "in": "query", "name": "token"},
        }
    return schema


def install(app: FastAPI, settings: Settings) -> None:
    """Serve `describe`'s answer at /openapi.json (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = describe(app, settings)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def file_responses(media_types: list[str]) -> Responses:
    """`responses=` for a route that serves stored files: whole, in ranges, or redirected to storage."""
    content = {media_type: {"schema": {"type": "string", "format": "binary"}} for media_type in media_types}
    ranged = {"Content-Range": {"description": "`bytes start-end/size`", "schema": {"type": "string"}}}
    return {
        200: {"description": "the whole file", "content": content},
        206: {
            "description": "the requested byte range (`Range: bytes=...`)",
            "content": content,
            "headers": ranged,
        },
        307: {
            "description": "the file is fetched from the storage at a signed URL (S3 storage)",
            "headers": {"Location": {"description": "the signed URL", "schema": {"type": "string"}}},
        },
        416: {"description": DESCRIPTIONS[416], "headers": ranged},
    } | problems(404)
