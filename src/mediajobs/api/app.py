"""The API application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry

from mediajobs.api import problems
from mediajobs.api.deps import require_api_key
from mediajobs.api.limits import BodyLimit
from mediajobs.api.routes import health, jobs, media, media_files, media_ops
from mediajobs.config import Settings, get_settings
from mediajobs.db.batch import BatchWriter
from mediajobs.db.session import get_db
from mediajobs.jobs.maintenance import Maintenance
from mediajobs.jobs.registry import load_kinds
from mediajobs.metrics import EngineCollector

log = logging.getLogger(__name__)
WEB_DIR = Path(__file__).resolve().parent.parent / "web" / "static"


def _storage_factory(settings: Settings) -> Callable[[], Any]:
    def storage() -> Any:
        from mediajobs.media.assets import storage_for

        return storage_for(settings)

    return storage


class RevalidatedStaticFiles(StaticFiles):
    """The UI's modules are revalidated on every load, so an upgrade never mixes old and new files."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        return response


def create_app(settings: Settings | None = None, *, maintenance: bool = True) -> FastAPI:
    settings = settings or get_settings()
    load_kinds(settings.kind_modules)
    db = get_db(settings.effective_database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loop = Maintenance(db, settings).start() if maintenance else None
        yield
        if loop is not None:
            loop.stop()

    app = FastAPI(
        title="mediajobs",
        version="1",
        lifespan=lifespan,
        description="Background media jobs with live progress: import, HLS, masking, cutting, analysis.",
    )
    app.state.settings = settings
    app.state.db = db
    app.state.batch_writer = BatchWriter(db)
    app.state.storage = _storage_factory(settings)
    app.state.metrics_registry = CollectorRegistry(auto_describe=False)
    app.state.metrics_registry.register(EngineCollector(db, settings))
    problems.install(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_json_body_bytes, exempt_suffixes=("/media/uploads",))

    app.include_router(health.router)
    auth = [Depends(require_api_key)]
    app.include_router(jobs.router, dependencies=auth)
    for router in (media.router, media_files.router, media_ops.router):
        app.include_router(router, dependencies=auth)

    if WEB_DIR.is_dir() and (WEB_DIR / "index.html").exists():
        app.mount("/ui", RevalidatedStaticFiles(directory=WEB_DIR, html=True), name="ui")

        @app.get("/", include_in_schema=False)
        def index() -> FileResponse:
            return FileResponse(WEB_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    return app


def app_factory() -> FastAPI:
    """For `uvicorn --factory mediajobs.api.app:app_factory`."""
    return create_app()
