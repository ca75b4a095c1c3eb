"""The Starlette application: DICOMweb routes under the base path, /health, lifespan."""

from __future__ import annotations

import contextlib
import logging

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from ..server import Server
from . import studies, workitems

log = logging.getLogger(__name__)


async def health(request: Request) -> JSONResponse:
    server: Server = request.app.state.server
    ok = server.ready and await server.schema_ok()
    return JSONResponse({"status": "ok" if ok else "unavailable"}, status_code=200 if ok else 503)


async def internal_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return JSONResponse({"status": 500, "message": "internal server error; see the server log"}, status_code=500)


def create_app(server: Server, manage_server: bool = True) -> Starlette:
    """The ASGI app. With ``manage_server`` the lifespan opens and closes ``server``."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        if manage_server:
            await server.open()
        try:
            yield
        finally:
            if manage_server:
                await server.close()

    base = server.settings.base_path.rstrip("/")
    dicomweb = workitems.routes() + studies.routes()  # UPS-RS; STOW/QIDO/WADO-RS
    app = Starlette(
        routes=[Route("/health", health), *([Mount(base, routes=dicomweb)] if base else dicomweb)],
        lifespan=lifespan,
        exception_handlers={Exception: internal_error},
    )
    app.state.server = server
    app.state.settings = server.settings
    return app
