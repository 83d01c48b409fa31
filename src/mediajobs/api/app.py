"""The API application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import swagger_ui_bundle
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry

from mediajobs.api import problems
from mediajobs.api.limits import BodyLimit
from mediajobs.api.routes import health, jobs, media, media_files, media_ops, webhooks
from mediajobs.api.security import Guard
from mediajobs.config import Settings, get_settings
from mediajobs.db.batch import BatchWriter
from mediajobs.db.session import get_db
from mediajobs.jobs.maintenance import Maintenance
from mediajobs.jobs.registry import load_kinds
from mediajobs.metrics import EngineCollector, metrics_server

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


def _openapi_with_bearer(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """The schema says /api/ wants a bearer token, so /docs offers "Authorize" (Guard does the checking)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            schema.setdefault("components", {})["securitySchemes"] = {
                "apiKey": {"type": "http", "scheme": "bearer"}
            }
            for path, operations in schema.get("paths", {}).items():
                if path.startswith("/api/"):
                    for operation in operations.values():
                        operation["security"] = [{"apiKey": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    return openapi


def create_app(settings: Settings | None = None, *, maintenance: bool = True) -> FastAPI:
    settings = settings or get_settings()
    load_kinds(settings.kind_modules)
    db = get_db(settings.effective_database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loop = Maintenance(db, settings).start() if maintenance else None
        exporter = metrics_server(app.state.metrics_registry, settings.metrics_port)
        yield
        if exporter is not None:
            exporter.shutdown()
            exporter.server_close()
        if loop is not None:
            loop.stop()

    app = FastAPI(
        title="mediajobs",
        version="1",
        lifespan=lifespan,
        description="Background media jobs with live progress: import, HLS, masking, cutting, analysis.",
        # Our own /docs below: FastAPI's loads Swagger UI from a CDN, onto the origin that holds the API key.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    if settings.api_key_list:
        app.openapi = _openapi_with_bearer(app)  # type: ignore[method-assign]
    app.state.db = db
    app.state.batch_writer = BatchWriter(db)
    app.state.storage = _storage_factory(settings)
    app.state.metrics_registry = CollectorRegistry(auto_describe=False)
    app.state.metrics_registry.register(EngineCollector(db, settings))
    problems.install(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_json_body_bytes, exempt_suffixes=("/media/uploads",))
    # Added last, so outermost: Host, API key and cross-site checks answer before any body is read.
    app.add_middleware(Guard, settings=settings)

    # Authentication is Guard's alone (every /api/ path), so routers carry no auth dependency.
    app.include_router(health.router)
    app.include_router(jobs.router)
    for router in (media.router, media_files.router, media_ops.router, webhooks.router):
        app.include_router(router)

    app.mount("/docs/assets", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="mediajobs API",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon-32x32.png",
        )

    if WEB_DIR.is_dir() and (WEB_DIR / "index.html").exists():
        app.mount("/ui", RevalidatedStaticFiles(directory=WEB_DIR, html=True), name="ui")

        @app.get("/", include_in_schema=False)
        def index() -> FileResponse:
            return FileResponse(WEB_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    return app


def app_factory() -> FastAPI:
    """For `uvicorn --factory mediajobs.api.app:app_factory`."""
    return create_app()
