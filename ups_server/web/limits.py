"""What a client may send or ask for over HTTP, from the settings: body size (413 before the body is
read when Content-Length tells), DICOM JSON size, search pages (PS3.18 8.3.4.4)."""

from __future__ import annotations

from starlette.requests import Request

from ..config import Settings
from .media import HTTPProblem


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def declared_length(request: Request) -> int | None:
    value = request.headers.get("content-length", "")
    return int(value) if value.isdigit() else None


def too_large(what: str, limit: int) -> HTTPProblem:
    return HTTPProblem(413, f"{what} is larger than {limit} bytes, the limit of this server")


async def read_body(request: Request) -> bytes:
    """The request body, refused with 413 once it passes ``max_body_size`` (at once when
    Content-Length says so: nothing of it is read)."""
    limit = _settings(request).max_body_size
    declared = declared_length(request)
    if declared is not None and declared > limit:
        raise too_large("the request body", limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large("the request body", limit)
        chunks.append(chunk)
    return b"".join(chunks)


def page_size(request: Request, requested: int | None) -> int:
    """The number of results to answer: ``limit`` when given, else the default page, at most the
    maximum page (PS3.18 8.3.4.4: the server may return fewer; a Warning says more remain)."""
    settings = _settings(request)
    size = settings.search_page_size if requested is None else requested
    return min(size, settings.search_max_page_size)


def more_results_warning(remaining: int | None) -> str:
    """PS3.18 8.3.4.4 (UPS-QS-06): the Warning text when a page does not hold every match."""
    if remaining is None:
        return "There are additional results that can be requested"
    return f"There are {remaining} additional results that can be requested"
