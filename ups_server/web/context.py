"""What a route reaches through the app: the services the root built (``create_app``)."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from ..services import Services


def services(request: HTTPConnection) -> Services:
    return request.app.state.services
