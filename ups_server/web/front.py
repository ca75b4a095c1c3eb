"""The one ASGI layer in front of the routes: what every HTTP request and WebSocket goes through,
in one call (a layer per concern cost a coroutine and a wrapped ``send`` each, on every request).

In order, for each HTTP request and WebSocket:

1. its log context and access line (``logs.RequestContext``, which this layer extends);
2. (HTTP) a fault answers 503 + Retry-After while the database cannot be reached, else (a bug)
   500, logged; either way the connection stays open: the exception ends here (Starlette's
   outermost handler re-raises it, and uvicorn then closes the connection, failing the client's
   next request on it);
3. ``X-Forwarded-*`` only from trusted proxies (``auth/proxies.py``);
4. a path or query holding a NUL character is refused with 400: no DICOM value contains one, and
   PostgreSQL text cannot store it;
5. (HTTP) counted in the metrics by method, route and status, with its time (``metrics.observe_http``);
6. its principal, or the refusal of its token (``auth/http.py``).
"""

from __future__ import annotations

import logging
import time

from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..auth.http import Authenticate
from ..auth.proxies import TrustedProxies
from ..db.faults import RETRY_AFTER_SECONDS, database_unavailable
from ..logs import RequestContext
from ..metrics import observe_http

log = logging.getLogger(__name__)

_NUL = "the URL holds a NUL character (%00)"


def has_nul(scope: Scope) -> bool:
    return "\x00" in scope["path"] or b"%00" in scope.get("query_string", b"")


class Front(RequestContext):
    def __init__(self, app: ASGIApp, *, proxies: TrustedProxies, authenticate: Authenticate):
        super().__init__(app)
        self.proxies = proxies
        self.authenticate = authenticate
        self._unavailable_logged = 0.0  # one warning per RETRY_AFTER_SECONDS while the outage lasts

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
            return
        scope = self.proxies.apply(scope)  # a WebSocket
        if has_nul(scope):
            await send({"type": "websocket.close", "code": 1008})
        elif await self.authenticate.admit(scope, receive, send):
            await self.app(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        status, started = 500, False

        async def sending(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
            await send(message)

        try:
            scope = self.proxies.apply(scope)
            if has_nul(scope):
                await JSONResponse({"status": 400, "message": _NUL}, status_code=400)(scope, receive, sending)
                return
            start = time.perf_counter()
            try:
                if await self.authenticate.admit(scope, receive, sending):
                    await self.app(scope, receive, sending)
            finally:
                observe_http(scope, status, time.perf_counter() - start)
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
