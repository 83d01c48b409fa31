"""The API application factory."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import swagger_ui_bundle
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry

from mediajobs import bootstrap, nodes, storage
from mediajobs.api import openapi, problems
from mediajobs.api.limits import BodyLimit
from mediajobs.api.routes import (
    captions,
    health,
    jobs,
    kinds,
    media,
    media_files,
    media_images,
    media_ops,
    webhooks,
)
from mediajobs.api.routes import uploads as upload_routes
from mediajobs.api.security import NON_JSON_PREFIXES, NON_JSON_SUFFIXES, Guard
from mediajobs.api.sse import Streams
from mediajobs.config import Settings, get_settings
from mediajobs.db.batch import BatchWriter
from mediajobs.jobs.maintenance import Maintenance
from mediajobs.media import uploads
from mediajobs.metrics import EngineCollector, metrics_server

log = logging.getLogger(__name__)
WEB_DIR = Path(__file__).resolve().parent.parent / "web" / "static"


class RevalidatedStaticFiles(StaticFiles):
    """The UI's modules are revalidated on every load, so an upgrade never mixes old and new files."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        return response


def _operation_id(route: APIRoute) -> str:
    return route.name


def create_app(settings: Settings | None = None, *, maintenance: bool = True) -> FastAPI:
    settings = settings or get_settings()
    services = bootstrap.services(settings)
    db = services.db

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        chores = [uploads.chore(services)]
        loop = Maintenance(services, chores=chores).start() if maintenance else None
        # Its node record (nodes.py) lets `doctor` on any host compare this API's configuration.
        node = (
            nodes.Recorder(db, settings, role=nodes.API, name=nodes.api_name(settings)).start()
            if maintenance
            else None
        )
        exporter = metrics_server(app.state.metrics_registry, settings.metrics_port)
        yield
        if exporter is not None:
            exporter.shutdown()
            exporter.server_close()
        if loop is not None:
            loop.stop()
        if node is not None:
            node.stop()

    app = FastAPI(
        title="mediajobs",
        version="1",
        lifespan=lifespan,
        description="Background media jobs with live progress: import, HLS, masking, cutting, analysis.",
        # Our own /docs below: FastAPI's loads Swagger UI from a CDN, onto the origin that holds the API key.
        docs_url=None,
        redoc_url=None,
        # Operation ids are the route functions' names, so generated clients call `create_job`, `get_job`.
        generate_unique_id_function=_operation_id,
    )
    app.state.settings = settings
    openapi.install(app, settings)
    app.state.db = db
    app.state.services = services
    app.state.batch_writer = BatchWriter(db)
    app.state.streams = Streams(settings.max_streams_per_caller)
    # The process's one storage handle; routes call this (tests may swap it) rather than open their own.
    app.state.storage = functools.partial(storage.for_process, settings)
    app.state.metrics_registry = CollectorRegistry(auto_describe=False)
    app.state.metrics_registry.register(EngineCollector(db, settings))
    problems.install(app)
    # Uploads and caption files are limited where they are read (MEDIAJOBS_MAX_UPLOAD_BYTES; 2 MiB).
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_json_body_bytes,
        exempt_suffixes=NON_JSON_SUFFIXES,
        exempt_prefixes=NON_JSON_PREFIXES,
    )
    # Added last, so outermost: Host, API key and cross-site checks answer before any body is read.
    app.add_middleware(Guard, settings=settings)

    # Authentication is Guard's alone (every /api/ path), so routers carry no auth dependency.
    app.include_router(health.router)
    app.include_router(jobs.router)
    app.include_router(kinds.router)
    routers = [media.router, media_files.router, media_images.router, media_ops.router, captions.router]
    routers.append(upload_routes.router)
    for router in (*routers, webhooks.router):
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
