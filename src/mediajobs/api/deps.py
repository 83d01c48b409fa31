"""Dependencies shared by the routes."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from mediajobs.api.problems import Problem
from mediajobs.config import Settings
from mediajobs.db.session import Database


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def get_db_dep(request: Request) -> Database:
    return request.app.state.db  # type: ignore[no-any-return]


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
DbDep = Annotated[Database, Depends(get_db_dep)]


def require_api_key(request: Request) -> None:
    """With MEDIAJOBS_API_KEYS set, every /api/ call needs `Authorization: Bearer <key>`."""
    keys: frozenset[str] = request.app.state.settings.api_key_set
    if not keys:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() == "bearer" and token and any(hmac.compare_digest(token, key) for key in keys):
        return
    detail = (
        "missing Authorization header; send 'Authorization: Bearer <key>' with one of MEDIAJOBS_API_KEYS"
        if not header
        else "invalid API key; send 'Authorization: Bearer <key>' with a configured key"
    )
    raise Problem(401, detail, slug="unauthorized", headers={"WWW-Authenticate": 'Bearer realm="mediajobs"'})
