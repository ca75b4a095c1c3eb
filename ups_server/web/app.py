"""The Starlette application: DICOMweb routes under the base path, /health, /metrics, lifespan."""

from __future__ import annotations

import contextlib
import logging

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ..audit import MINOR_FAILURE, USER_AUTHENTICATION, Actor, record_now
from ..auth.http import Authenticate, client_address, principal_of
from ..auth.proxies import TrustedProxies
from ..logs import RequestContext
from ..metrics import HTTPMetrics
from ..metrics import endpoint as metrics
from ..server import Server
from . import admin, retrieve, studies, ui, workitems
from .media import HTTPProblem

log = logging.getLogger(__name__)


async def health(request: Request) -> JSONResponse:
    server: Server = request.app.state.server
    ok = server.ready and await server.schema_ok()
    return JSONResponse({"status": "ok" if ok else "unavailable"}, status_code=200 if ok else 503)


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
    """A fault of ours answers 500 and is logged, and the connection stays open: the exception
    ends here (Starlette's outermost handler re-raises it, and uvicorn then closes the connection,
    failing the client's next request on it)."""

    def __init__(self, app: ASGIApp):
        self.app = app

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
        except Exception:
            log.exception("unexpected error on %s %s", scope["method"], scope["path"])
            if started:
                raise  # half a response: only closing the connection ends it
            await JSONResponse({"status": 500, "message": "internal server error; see the server log"},
                               status_code=500)(scope, receive, send)


def audit_failure(server: Server):
    """The Authenticate hook: a refused token is audited (User Authentication, minor failure)."""

    async def hook(scope: Scope, reason: str) -> None:
        await record_now(server.database.engine, USER_AUTHENTICATION,
                         Actor.of(principal_of(scope), client_address(scope)), "authentication",
                         outcome=MINOR_FAILURE, detail=f"{scope.get('method', 'WEBSOCKET')} {scope['path']}: {reason}")

    return hook


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
    dicomweb = workitems.routes() + studies.routes() + retrieve.routes()  # UPS-RS; STOW/QIDO/WADO-RS; jobs
    app = Starlette(
        routes=[Route("/health", health), Route("/metrics", metrics), *admin.routes(), *ui.routes(),
                *([Mount(base, routes=dicomweb)] if base else dicomweb)],
        lifespan=lifespan,
        middleware=[Middleware(RequestContext), Middleware(InternalErrors),
                    Middleware(TrustedProxies, trusted=server.settings.trusted_proxies), Middleware(RejectNul),
                    Middleware(HTTPMetrics),  # inside TrustedProxies, which copies the scope: it sees the route
                    Middleware(Authenticate, verifier=server.verifier, open_paths=("/health", "/metrics"),
                               on_failure=audit_failure(server))],
        exception_handlers={HTTPProblem: problem},
    )
    app.state.server = server
    app.state.settings = server.settings
    return app
