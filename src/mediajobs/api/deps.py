"""Dependencies shared by the routes (authentication is not one: `api/security.py` owns it)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from mediajobs.config import Settings
from mediajobs.db.session import Database
from mediajobs.jobs.hooks import Services


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def get_db_dep(request: Request) -> Database:
    return request.app.state.db  # type: ignore[no-any-return]


def get_services_dep(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
DbDep = Annotated[Database, Depends(get_db_dep)]
# The database, settings and broker together, for what moves jobs or assets (their hooks get them).
ServicesDep = Annotated[Services, Depends(get_services_dep)]
