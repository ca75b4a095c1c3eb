"""Request bodies, media types and error responses for the DICOMweb routes."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..dicom.dataset import InvalidDataset, JsonDataset, validate
from ..ups.errors import Outcome, Transaction, UPSError, http_status

DICOM_JSON = "application/dicom+json"
_JSON_TYPES = (DICOM_JSON, "application/json")


class HTTPProblem(Exception):
    """A request refused before it reaches a service (media type, syntax)."""

    def __init__(self, status: int, message: str, warning: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.warning = warning


def service_url(request: Request) -> str:
    """The origin server's base URI as the client addressed it (proxy headers honoured)."""
    base = request.app.state.settings.base_path.rstrip("/")
    scheme = request.headers.get("x-forwarded-proto", request.url.scheme)
    host = request.headers.get("x-forwarded-host") or request.headers.get("host") or request.url.netloc
    return f"{scheme}://{host}{base}"


def check_accept(request: Request) -> None:
    """406 unless the client accepts DICOM JSON (PS3.18 8.7; UPS-HTTP-01)."""
    accept = request.query_params.get("accept") or request.headers.get("accept") or "*/*"
    types = [part.split(";")[0].strip().lower() for part in accept.split(",")]
    if not any(t in ("*/*", "application/*", *_JSON_TYPES) for t in types):
        raise HTTPProblem(406, f"cannot answer with {accept!r}; this server answers application/dicom+json")


async def read_dataset(request: Request, *, required: bool = True) -> JsonDataset:
    """The request's DICOM JSON dataset: a bare object or an array of one (both seen in clients)."""
    body = await request.body()
    if not body.strip():
        if required:
            raise HTTPProblem(400, "the request needs a DICOM JSON dataset as its body")
        return {}
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in _JSON_TYPES:
        raise HTTPProblem(415, f"unsupported Content-Type {content_type or '(none)'!r}; send application/dicom+json")
    try:
        parsed: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise HTTPProblem(400, f"the body is not valid JSON: {exc}") from None
    if isinstance(parsed, list):
        if len(parsed) != 1:
            raise HTTPProblem(400, f"expected one dataset, got an array of {len(parsed)}")
        parsed = parsed[0]
    try:
        return validate(parsed)
    except InvalidDataset as exc:
        raise HTTPProblem(400, f"the body is not a valid DICOM JSON dataset: {exc}") from None


def dicom_json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return Response(body, status_code=status, media_type=DICOM_JSON, headers=headers)


def warning_header(request: Request, text: str) -> dict[str, str]:
    return {"Warning": f'299 {service_url(request)}: {text}'}


def outcome_response(
    request: Request, outcome: Outcome, transaction: Transaction, detail: str | None = None,
    headers: dict[str, str] | None = None, payload: Any = None,
) -> Response:
    """The HTTP answer for a domain outcome, from the one status table."""
    status, warning = http_status(outcome, transaction)
    headers = dict(headers or {})
    if warning:
        headers.update(warning_header(request, warning))
    if outcome.is_failure:
        body = {"status": status, "dicomStatus": f"{outcome.status:04X}",
                "message": detail or outcome.meaning}
        return JSONResponse(body, status_code=status, headers=headers)
    if payload is not None:
        return dicom_json(payload, status, headers)
    return Response(status_code=status, headers=headers)


def error_response(request: Request, exc: UPSError | HTTPProblem, transaction: Transaction) -> Response:
    if isinstance(exc, UPSError):
        return outcome_response(request, exc.outcome, transaction, exc.detail)
    headers = warning_header(request, exc.warning) if exc.warning else None
    return JSONResponse({"status": exc.status, "message": exc.message}, status_code=exc.status, headers=headers)
