"""UPS-RS workitem routes (PS3.18 chapter 11): thin - parse, call UPSService, map the outcome."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..auth.http import principal_of
from ..dicom.dataset import JsonDataset, first
from ..dicom.uids import is_valid_uid
from ..ups import tags as t
from ..ups.errors import Outcome, Transaction, UPSError
from ..ups.requests import TxnCandidate, TxnSource, UPSRequest
from ..ups.service import UPSService
from .context import services
from .media import (
    HTTPProblem,
    dicom_response,
    error_response,
    negotiate,
    outcome_response,
    read_dataset,
    service_url,
)

Handler = Callable[[Request], Awaitable[Response]]

_CREATE_UID_PARAMS = ("workitem", "affectedsopinstanceuid")
_TXN_PARAMS = ("transaction-uid", "transaction")
REQUESTER_MAX = 64  # as an LO value (a user name or AE title)


def ups_transaction(transaction: Transaction) -> Callable[[Handler], Handler]:
    """Answer UPSError / HTTPProblem raised by a handler with the table's status and Warning."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def run(request: Request) -> Response:
            try:
                return await handler(request)
            except (UPSError, HTTPProblem) as exc:
                return error_response(request, exc, transaction)

        return run

    return wrap


def _service(request: Request) -> UPSService:
    return services(request).ups


def _param(request: Request, names: tuple[str, ...]) -> str | None:
    """A query parameter by any of ``names`` (case-insensitive), else a bare ``?{uid}`` key."""
    for key, value in request.query_params.multi_items():
        if key.lower() in names and value:
            return value
    for key, value in request.query_params.multi_items():
        if not value and is_valid_uid(key):
            return key
    return None


def requester_of(request: Request) -> str | None:
    """Who makes the request: path segment ``/{requester}``, else ``?requester=``."""
    requester = request.path_params.get("requester") or request.query_params.get("requester") or None
    if requester and len(requester) > REQUESTER_MAX:
        raise HTTPProblem(400, f"the requester is longer than {REQUESTER_MAX} characters")
    return requester


def ups_request(request: Request, dataset: JsonDataset, *, uid_params: tuple[str, ...] = ()) -> UPSRequest:
    """The UPS request of an HTTP request: the workitem of the path (or of ``uid_params``), the
    dataset, every Transaction UID it carries (query, dataset) and the requester."""
    if uid_params:  # create: a bare ?{uid} key names the new workitem, not a transaction
        uid, query_txn = _param(request, uid_params), None
    else:
        uid, query_txn = request.path_params.get("uid"), _param(request, _TXN_PARAMS)
    candidates = [TxnCandidate(txn, source) for txn, source in (
        (query_txn, TxnSource.QUERY), (first(dataset, t.TRANSACTION_UID), TxnSource.DATASET)) if txn]
    return UPSRequest(uid, dataset, tuple(candidates), requester_of(request), principal_of(request))


def workitem_url(request: Request, uid: str) -> str:
    return f"{service_url(request)}/workitems/{uid}"


@ups_transaction(Transaction.CREATE)
async def create(request: Request) -> Response:
    dataset = await read_dataset(request)
    result = await _service(request).create(ups_request(request, dataset, uid_params=_CREATE_UID_PARAMS))
    headers = {"Location": workitem_url(request, result.uid), "Content-Location": workitem_url(request, result.uid)}
    return outcome_response(request, result.warning or Outcome.SUCCESS, Transaction.CREATE, result.detail, headers)


@ups_transaction(Transaction.RETRIEVE)
async def retrieve(request: Request) -> Response:
    media = negotiate(request)
    dataset = await _service(request).retrieve(request.path_params["uid"], principal_of(request))
    return dicom_response(media, [dataset])


@ups_transaction(Transaction.UPDATE)
async def update(request: Request) -> Response:
    dataset = await read_dataset(request)
    result = await _service(request).update(ups_request(request, dataset))
    return outcome_response(request, result.warning or Outcome.SUCCESS, Transaction.UPDATE)


@ups_transaction(Transaction.CHANGE_STATE)
async def change_state(request: Request) -> Response:
    dataset = await read_dataset(request)
    result = await _service(request).change_state(ups_request(request, dataset))
    return outcome_response(request, result.warning or Outcome.SUCCESS, Transaction.CHANGE_STATE)


@ups_transaction(Transaction.CANCEL)
async def request_cancel(request: Request) -> Response:
    info = await read_dataset(request, required=False)
    result = await _service(request).request_cancel(ups_request(request, info))
    return outcome_response(request, result.warning or Outcome.SUCCESS, Transaction.CANCEL)


@ups_transaction(Transaction.CHANGE_STATE)
async def claim_next(request: Request) -> Response:
    """Extension (not in PS3.18): claim the oldest matching SCHEDULED workitem."""
    media = negotiate(request)
    body = await read_dataset(request, required=False)
    from .search import claim_query  # the search keys of the query string

    result = await _service(request).claim_next(ups_request(request, body), claim_query(request))
    if result is None:
        return Response(status_code=204)
    payload = {**result.dataset, t.TRANSACTION_UID: {"vr": "UI", "Value": [result.transaction_uid]}}
    return dicom_response(media, [payload], headers={"Content-Location": workitem_url(request, result.uid)})


@ups_transaction(Transaction.CHANGE_STATE)
async def skip(request: Request) -> Response:
    """Extension (not in PS3.18): the performer gives the workitem back to the pool (SCHEDULED)."""
    body = await read_dataset(request, required=False)
    await _service(request).skip(ups_request(request, body))
    return Response(status_code=200)


@ups_transaction(Transaction.UPDATE)
async def reassign(request: Request) -> Response:
    """Extension (an administrator's action): schedule the workitem for ``?reader=``."""
    reader = request.query_params.get("reader", "").strip()
    if not reader or len(reader) > 16:
        raise HTTPProblem(400, "reassign needs ?reader= (a reader name of 1 to 16 characters, an SH code value)")
    await _service(request).reassign(request.path_params["uid"], reader, principal_of(request))
    return Response(status_code=200)


def routes() -> list[Route]:
    from .search import search
    from .subscriptions import routes as subscription_routes

    return [
        Route("/workitems", create, methods=["POST"]),
        Route("/workitems", search, methods=["GET"]),
        Route("/workitems/claim", claim_next, methods=["POST"]),
        Route("/workitems/{uid}", retrieve, methods=["GET"]),
        Route("/workitems/{uid}", update, methods=["POST", "PUT"]),
        Route("/workitems/{uid}/state", change_state, methods=["PUT"]),
        Route("/workitems/{uid}/state/{requester}", change_state, methods=["PUT"]),
        Route("/workitems/{uid}/cancelrequest", request_cancel, methods=["POST"]),
        Route("/workitems/{uid}/cancelrequest/{requester}", request_cancel, methods=["POST"]),
        Route("/workitems/{uid}/skip", skip, methods=["POST"]),
        Route("/workitems/{uid}/reassign", reassign, methods=["POST"]),
        *subscription_routes(),  # subscribe / unsubscribe / suspend, notification WebSocket
    ]
