"""GET /workitems (Search) and the search keys of the claim-next extension.

PLACEHOLDER until the search matcher lands: ``claim_filter`` applies no keys.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement
from starlette.requests import Request
from starlette.responses import Response


def claim_filter(request: Request) -> ColumnElement[bool] | None:
    return None


async def search(request: Request) -> Response:
    return Response(status_code=501)
