"""The Starlette application: DICOMweb routes under the base path, /health, /metrics, lifespan."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ..audit import MINOR_FAILURE, USER_AUTHENTICATION, Actor, record_now
from ..auth.http import Authenticate, client_address, principal_of
from ..auth.oidc import OIDCVerifier
from ..auth.proxies import TrustedProxies
from ..config import Settings
from ..db.faults import RETRY_AFTER_SECONDS, can_connect, database_unavailable
from ..logs import RequestContext
from ..metrics import HTTPMetrics
from ..metrics import endpoint as metrics
from ..services import Services
from . import admin, openapi, retrieve, studies, ui, workitems
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


class RejectNul:
    """A request whose path or query holds a NUL character is refused with 400: no DICOM value
    contains one, and PostgreSQL text cannot store it."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and (
                "\x00" in scope["path"] or b"%00" in scope.get("query_string", b"")):
            if scope["type"] == "http":
                await JSONResponse({"status": 400, "message": "the URL holds a NUL character (%00)"},
                                   status_code=400)(scope, receive, send)
            else:
                await send({"type": "websocket.close", "code": 1008})
            return
        await self.app(scope, receive, send)


class InternalErrors:
    """A fault answers 503 + Retry-After while the database cannot be reached, else (a bug) 500,
    logged; either way the connection stays open: the exception ends here (Starlette's outermost
    handler re-raises it, and uvicorn then closes the connection, failing the client's next
    request on it)."""

    def __init__(self, app: ASGIApp):
        self.app = app
        self._unavailable_logged = 0.0  # one warning per RETRY_AFTER_SECONDS while the outage lasts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except ClientDisconnect:  # the client went away while its body was read: nobody to answer
            log.info("%s %s: the client disconnected", scope["method"], scope["path"])
        except Exception as exc:
            unavailable = database_unavailable(exc)
            if unavailable and time.monotonic() - self._unavailable_logged > RETRY_AFTER_SECONDS:
                self._unavailable_logged = time.monotonic()
                log.warning("%s %s: the database is unavailable (%s: %s)", scope["method"], scope["path"],
                            type(exc).__name__, exc)
            elif not unavailable:
                log.exception("unexpected error on %s %s", scope["method"], scope["path"])
            if started:
                raise  # half a response: only closing the connection ends it
            if unavailable:
                response = JSONResponse({"status": 503, "message": "the database is unavailable; retry later"},
                                        status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
            else:
                response = JSONResponse({"status": 500, "message": "internal server error; see the server log"},
                                        status_code=500)
            await response(scope, receive, send)


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
        middleware=[Middleware(RequestContext), Middleware(InternalErrors),
                    Middleware(TrustedProxies, trusted=server.settings.trusted_proxies), Middleware(RejectNul),
                    Middleware(HTTPMetrics),  # inside TrustedProxies, which copies the scope: it sees the route
                    Middleware(Authenticate, verifier=server.verifier, open_paths=("/health", "/metrics", "/openapi.json"),
                               on_failure=audit_failure(server))],
        exception_handlers={HTTPProblem: problem},
    )
    app.state.root = server
    app.state.services = server.services  # None until the lifespan opens the server
    app.state.settings = server.settings
    return app
