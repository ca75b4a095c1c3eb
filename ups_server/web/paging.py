"""Keyset paging of GET /workitems (an extension beside PS3.18's ``offset``): a page that has more
matches after it names the next page in a ``Link: <…&after=TOKEN>; rel="next"`` header (RFC 8288).

The token is opaque to clients: the creation-order key (``seq``) of the page's last workitem and a
check over that key and the search keys. The next page starts after that workitem, so a match is
answered exactly once across the pages even while workitems are created or change state between
them (``offset`` counts rows, so those shift it). A token that was not made for the same search
keys, or was altered, is refused with 400: the check catches mistakes, it is no secret (a forged
token can only start a page elsewhere in a result the client may read anyway).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request

from ..dicom.query import Match, Query
from ..dicom.statuses import FIND_HTTP, Find
from .media import HTTPProblem, service_url

PARAM = "after"
_KEY_BYTES, _CHECK_BYTES = 8, 8
_BAD_QUERY = FIND_HTTP[Find.IDENTIFIER_DOES_NOT_MATCH]  # 400, as any query the server cannot understand


def _canonical(keys: list[Match]) -> list[Any]:
    """The matching keys in a form independent of their order in the query string."""
    return sorted(([m.tag, m.values, None if m.item is None else _canonical(m.item)]
                   for m in keys if not m.is_universal), key=lambda k: k[0])


def _check(key: bytes, query: Query) -> bytes:
    keys = json.dumps(_canonical(query.keys), separators=(",", ":")).encode()
    return hashlib.sha256(key + keys).digest()[:_CHECK_BYTES]


def token(last: int, query: Query) -> str:
    """The token of the page after the workitem with creation-order key ``last``."""
    key = last.to_bytes(_KEY_BYTES, "big")
    return base64.urlsafe_b64encode(key + _check(key, query)).rstrip(b"=").decode()


def position(value: str, query: Query) -> int:
    """The creation-order key a token of ``query`` holds; 400 for anything else."""
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    key, check = raw[:_KEY_BYTES], raw[_KEY_BYTES:]
    if len(raw) != _KEY_BYTES + _CHECK_BYTES or check != _check(key, query):
        raise HTTPProblem(_BAD_QUERY, f"{PARAM}={value!r} is not a continuation token of this search: use the URL of "
                               "the previous page's Link header (rel=\"next\") with the same search keys")
    return int.from_bytes(key, "big")


def split_after(items: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], str | None]:
    """The query parameters without ``after``, and its value (400 when given more than once)."""
    found = [value for name, value in items if name.strip().lower() == PARAM]
    if len(found) > 1:
        raise HTTPProblem(_BAD_QUERY, f"{PARAM} is given more than once")
    return [(name, value) for name, value in items if name.strip().lower() != PARAM], (found[0] if found else None)


def next_link(request: Request, next_token: str) -> str:
    """The Link header value naming the next Search page: this request's parameters, ``offset`` dropped
    (the token holds the position) and ``after`` set."""
    params = [(name, value) for name, value in request.query_params.multi_items()
              if name.strip().lower() not in (PARAM, "offset")]
    params.append((PARAM, next_token))
    return f'<{service_url(request)}/workitems?{urlencode(params)}>; rel="next"'
