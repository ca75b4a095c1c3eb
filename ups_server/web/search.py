"""GET /workitems (Search, PS3.18 11.9; keyset paging: ``paging.py``) and the search keys of the
claim-next extension."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..auth.http import principal_of
from ..dicom.query import Query, QueryError, parse_http_query
from ..dicom.statuses import FIND_HTTP, Find
from ..dicom.uids import is_valid_uid
from ..ups.errors import Transaction, UPSError
from . import paging
from .context import services
from .limits import more_results_warning, page_size
from .media import HTTPProblem, dicom_response, error_response, negotiate, service_url

# UPS-QS-05 (PS3.18 8.3.4.2, 8.3.4.5-6): literal matching only, and say so.
FUZZY_NOT_SUPPORTED = "The fuzzymatching parameter is not supported. Only literal matching has been performed."
EMPTY_NOT_SUPPORTED = ("The emptyvaluematching parameter is not supported. "
                       "Empty Value Matching has not been performed.")
MULTIPLE_NOT_SUPPORTED = ("The multiplevaluematching parameter is not supported. "
                          "Multiple Value Matching has not been performed.")
# Query parameters of POST /workitems/claim that are not search keys.
_CLAIM_PARAMS = ("requester", "transaction-uid", "transaction", "includefield", "limit", "offset")


def query_warnings(query: Query) -> list[str]:
    """What a Search (UPS-RS or QIDO-RS) did not do that the query asked for (PS3.18 8.3.4)."""
    return [text for flag, text in ((query.fuzzy, FUZZY_NOT_SUPPORTED), (query.empty_value, EMPTY_NOT_SUPPORTED),
                                    (query.multiple_value, MULTIPLE_NOT_SUPPORTED)) if flag]


def warning_headers(request: Request, warnings: list[str]) -> dict[str, str]:
    return {"Warning": ", ".join(f"299 {service_url(request)}: {w}" for w in warnings)} if warnings else {}


def claim_query(request: Request) -> Query | None:
    """The search keys in the query string of POST /workitems/claim (None: any workitem)."""
    keys = [
        (name, value) for name, value in request.query_params.multi_items()
        if name.lower() not in _CLAIM_PARAMS and not (not value and is_valid_uid(name))
    ]
    if not keys:
        return None
    try:
        return parse_http_query(keys)
    except QueryError as exc:
        raise HTTPProblem(FIND_HTTP[Find.IDENTIFIER_DOES_NOT_MATCH], f"invalid search key: {exc}") from None


async def search(request: Request) -> Response:
    """Search for workitems: 200 + array, 204 when nothing, Warning on remaining results."""
    try:
        media = negotiate(request)
        items, after = paging.split_after(request.query_params.multi_items())
        try:
            query = parse_http_query(items)
        except QueryError as exc:
            raise HTTPProblem(FIND_HTTP[Find.IDENTIFIER_DOES_NOT_MATCH], f"invalid query: {exc}") from None
        page = await services(request).ups.search(
            query, offset=query.offset, limit=page_size(request, query.limit),
            after=None if after is None else paging.position(after, query), principal=principal_of(request))
    except (UPSError, HTTPProblem) as exc:
        return error_response(request, exc, Transaction.SEARCH)
    warnings = query_warnings(query)
    if page.remaining and page.datasets:  # UPS-QS-06
        warnings.append(more_results_warning(page.remaining))
    headers = warning_headers(request, warnings)
    if page.last is not None and page.datasets:  # keyset paging (extension)
        headers["Link"] = paging.next_link(request, paging.token(page.last, query))
    if not page.datasets:
        return Response(status_code=204, headers=headers)
    return dicom_response(media, page.datasets, headers=headers)
