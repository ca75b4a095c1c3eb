"""UPS-RS subscriptions (PS3.18 11.10-11.12) and the notification WebSocket (8.10, 11.13).

Thin: parse the request, call ``services.events`` (events.component.Events), map the outcome.
Subscribe answers 201 with Content-Location = the ws:// (wss:// behind a TLS proxy) URL of
the WebSocket, carrying the host and port the client used (UPS-SUB-12).
"""

from __future__ import annotations

import re
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from ..auth.http import principal_of
from ..dicom.uids import FILTERED_GLOBAL_SUBSCRIPTION, GLOBAL_SUBSCRIPTION
from ..events.component import Events
from ..events.filters import parse_filter_param
from ..events.owners import check_owner
from ..events.wire import WRITE_FRAME
from ..ups.errors import Outcome, Transaction, UPSError
from .context import services
from .media import HTTPProblem, outcome_response, service_url
from .workitems import ups_transaction

_AE_TITLE = re.compile(r"^[^\\\x00-\x1f]{1,16}$")
_GLOBAL = (GLOBAL_SUBSCRIPTION, FILTERED_GLOBAL_SUBSCRIPTION)
_SUBSCRIBE_PARAMS = ("deletionlock", "filter", "accept", "charset")


def _events(request: Request | WebSocket) -> Events:
    return services(request).events




def _aet(request: Request) -> str:
    aet = request.path_params["aetitle"]
    if not _AE_TITLE.match(aet) or not aet.strip():
        raise UPSError(Outcome.INVALID_ATTRIBUTE_VALUE,
                       f"{aet!r} is not a valid AE title (1 to 16 characters, no backslash)")
    return aet.strip()


def websocket_url(request: Request, aet: str) -> str:
    """ws(s)://<host[:port] the client used>/<base>/subscribers/<aet>."""
    base = service_url(request)
    forwarded_port = request.headers.get("x-forwarded-port")
    scheme, _, rest = base.partition("://")
    host, _, path = rest.partition("/")
    default_port = (scheme, forwarded_port) in (("http", "80"), ("https", "443"))
    if (forwarded_port and request.headers.get("x-forwarded-host") and ":" not in host.rsplit("]", 1)[-1]
            and not default_port):
        host = f"{host}:{forwarded_port}"
    ws_scheme = "wss" if scheme.lower() == "https" else "ws"
    return f"{ws_scheme}://{host}/{path}{'/' if path else ''}subscribers/{quote(aet, safe='')}"


def _deletion_lock(request: Request) -> bool:
    value = request.query_params.get("deletionlock")
    if value is None or value == "":
        return False
    if value.lower() not in ("true", "false"):
        raise UPSError(Outcome.INVALID_ATTRIBUTE_VALUE, f"deletionlock={value!r}: expected true or false")
    return value.lower() == "true"


def _filter(request: Request, uid: str) -> list[tuple[str, str]] | None:
    """``filter=attr=value[,attr=value]`` (2024e) or, as in PS3.18 2017, bare ``attr=value``
    parameters; only on the global subscription resources."""
    pairs = parse_filter_param(request.query_params.getlist("filter"))
    pairs += [(k, v) for k, v in request.query_params.multi_items() if k.lower() not in _SUBSCRIBE_PARAMS]
    if uid not in _GLOBAL:
        if pairs:
            raise HTTPProblem(400, "filter is only allowed on the global subscription resources "
                                   f"{GLOBAL_SUBSCRIPTION} and {FILTERED_GLOBAL_SUBSCRIPTION}")
        return None
    if uid == FILTERED_GLOBAL_SUBSCRIPTION and not pairs:
        raise HTTPProblem(400, "a filtered global subscription needs filter=attribute=value[,...]")
    return pairs or None


@ups_transaction(Transaction.SUBSCRIBE)
async def subscribe(request: Request) -> Response:
    uid, aet = request.path_params["uid"], _aet(request)
    lock = _deletion_lock(request)
    pairs = _filter(request, uid)
    target = FILTERED_GLOBAL_SUBSCRIPTION if pairs else uid
    outcome = await _events(request).subscribe(target, aet, lock, pairs, via_http=True, principal=principal_of(request))
    headers = {"Content-Location": websocket_url(request, aet)}
    return outcome_response(request, outcome or Outcome.SUCCESS, Transaction.SUBSCRIBE, headers=headers)


@ups_transaction(Transaction.UNSUBSCRIBE)
async def unsubscribe(request: Request) -> Response:
    uid, aet = request.path_params["uid"], _aet(request)
    await _events(request).unsubscribe(uid, aet, principal=principal_of(request))
    return outcome_response(request, Outcome.SUCCESS, Transaction.UNSUBSCRIBE)


@ups_transaction(Transaction.SUSPEND)
async def suspend(request: Request) -> Response:
    uid, aet = request.path_params["uid"], _aet(request)
    await _events(request).suspend_global(uid, aet, principal=principal_of(request))
    return outcome_response(request, Outcome.SUCCESS, Transaction.SUSPEND)


async def notifications(websocket: WebSocket) -> None:
    """Open Notification Connection (UPS-WS-01): one DICOM JSON event per text frame."""
    aet = websocket.path_params["aetitle"]
    events = _events(websocket)
    if not _AE_TITLE.match(aet):
        await websocket.close(code=1008)
        return
    principal = principal_of(websocket)
    try:
        await check_owner(services(websocket).engine, aet.strip(), principal)
    except UPSError as exc:
        await websocket.close(code=1008, reason=exc.detail or "not authorized")
        return
    await websocket.accept()

    async def until_closed() -> None:
        try:
            while (await websocket.receive())["type"] != "websocket.disconnect":
                pass
        except (WebSocketDisconnect, RuntimeError):
            return

    await events.websockets.serve(aet.strip(), websocket.send_text, until_closed, lambda code: websocket.close(code),
                                  principal, websocket.scope.get("extensions", {}).get(WRITE_FRAME))


def routes() -> list[BaseRoute]:
    return [
        Route("/workitems/{uid}/subscribers/{aetitle}", subscribe, methods=["POST"]),
        Route("/workitems/{uid}/subscribers/{aetitle}", unsubscribe, methods=["DELETE"]),
        Route("/workitems/{uid}/subscribers/{aetitle}/suspend", suspend, methods=["POST"]),
        WebSocketRoute("/subscribers/{aetitle}", notifications),
        WebSocketRoute("/ws/subscribers/{aetitle}", notifications),
    ]
