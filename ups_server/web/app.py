"""The Starlette application: DICOMweb routes under the base path, /health, /metrics, lifespan."""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from starlette.types import Scope

from ..audit import MINOR_FAILURE, USER_AUTHENTICATION, Actor, record_now
from ..auth.http import Authenticate, client_address, principal_of
from ..auth.oidc import OIDCVerifier
from ..auth.proxies import TrustedProxies
from ..config import Settings
from ..db.faults import can_connect
from ..metrics import endpoint as metrics
from ..services import Services
from . import admin, openapi, retrieve, studies, ui, workitems
from .front import Front
from .media import HTTPProblem

log = logging.getLogger(__name__)


class Root(Protocol):
    """What the app needs of the composition root (``ups_server.server.Server``): its settings,
    its services once open, and its lifetime."""

    settings: Settings
    services: Services | None
    verifier: OIDCVerifier | None
    dimse: Any  # the DimseServer (its associations are a metric), None without DIMSE
    ready: bool

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def schema_ok(self) -> bool: ...


async def health(request: Request) -> JSONResponse:
    root: Root = request.app.state.root
    ok = (root.ready and root.services is not None and await can_connect(root.services.engine.url)
          and await root.schema_ok())
    # pid: which process answered (the workers of ``serve --workers N`` share one port)
    return JSONResponse({"status": "ok" if ok else "unavailable", "pid": os.getpid()}, status_code=200 if ok else 503)


async def problem(request: Request, exc: HTTPProblem) -> JSONResponse:
    return JSONResponse({"status": exc.status, "message": exc.message}, status_code=exc.status)


def audit_failure(root: Root):
    """The Authenticate hook: a refused token is audited (User Authentication, minor failure)."""

    async def hook(scope: Scope, reason: str) -> None:
        assert root.services is not None
        await record_now(root.services.engine, USER_AUTHENTICATION,
                         Actor.of(principal_of(scope), client_address(scope)), "authentication",
                         outcome=MINOR_FAILURE, detail=f"{scope.get('method', 'WEBSOCKET')} {scope['path']}: {reason}")

    return hook


def create_app(server: Root, manage_server: bool = True) -> Starlette:
    """The ASGI app. With ``manage_server`` the lifespan opens and closes ``server``; the routes
    reach the services as ``app.state.services`` (``web/context.py``)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        if manage_server:
            await server.open()
        app.state.services = server.services
        try:
            yield
        finally:
            if manage_server:
                await server.close()

    base = server.settings.base_path.rstrip("/")
    dicomweb = workitems.routes() + studies.routes() + retrieve.routes()  # UPS-RS; STOW/QIDO/WADO-RS; jobs
    app = Starlette(
        routes=[Route("/health", health), Route("/metrics", metrics), *openapi.routes(), *admin.routes(), *ui.routes(),
                *([Mount(base, routes=dicomweb)] if base else dicomweb)],
        lifespan=lifespan,
        middleware=[Middleware(Front, proxies=TrustedProxies(server.settings.trusted_proxies),
                               authenticate=Authenticate(server.verifier,
                                                         open_paths=("/health", "/metrics", "/openapi.json"),
                                                         on_failure=audit_failure(server)))],
        exception_handlers={HTTPProblem: problem},
    )
    app.state.root = server
    app.state.services = server.services  # None until the lifespan opens the server
    app.state.settings = server.settings
    return app
