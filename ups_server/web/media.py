"""Request bodies, media types and error responses for the DICOMweb routes."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..dicom import jsontext
from ..dicom.dataset import JsonDataset
from ..dicom.validation import InvalidDataset, JsonLimits, loads, validate
from ..dicom.xml import from_xml, to_xml
from ..ups.errors import Outcome, PolicyOutcome, Transaction, UPSError, http_status
from .multipart import MultipartError, content_type_params, read_parts, related

DICOM_JSON = "application/dicom+json"
DICOM_XML = "application/dicom+xml"
MULTIPART_XML = f'multipart/related; type="{DICOM_XML}"'
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


def _accept_entries(request: Request) -> list[tuple[str, dict[str, str]]]:
    """The Accept media ranges (``?accept=`` first, PS3.18 8.3.3.1), best q first; q=0 dropped."""
    accept = request.query_params.get("accept") or request.headers.get("accept") or "*/*"
    entries = []
    for position, item in enumerate(accept.split(",")):
        media, params = content_type_params(item)
        try:
            q = float(params.get("q", "1"))
        except ValueError:
            q = 1.0
        if media and q > 0:
            entries.append((-q, position, media, params))
    return [(media, params) for _q, _pos, media, params in sorted(entries)]


def negotiate(request: Request, *, bare_xml: bool = False) -> str:
    """The response media type (PS3.18 8.7.3): DICOM JSON, or DICOM XML as ``multipart/related;
    type="application/dicom+xml"`` (one part per dataset; UPS-RS knows no other XML form, Table
    11.1.3-1), or, where ``bare_xml`` (the STOW-RS response, 10.5.3), one ``application/dicom+xml``
    document. 406 otherwise."""
    for media, params in _accept_entries(request):
        if media in ("*/*", "application/*", *_JSON_TYPES):
            return DICOM_JSON
        if media in ("multipart/related", "multipart/*") and params.get("type", DICOM_XML).lower() == DICOM_XML:
            return MULTIPART_XML
        if media == DICOM_XML and bare_xml:
            return DICOM_XML
    accept = request.query_params.get("accept") or request.headers.get("accept")
    raise HTTPProblem(406, f"cannot answer with {accept!r}; this server answers application/dicom+json or "
                           f"{MULTIPART_XML}" + ("" if not bare_xml else f" or {DICOM_XML}"))


async def read_dataset(request: Request, *, required: bool = True) -> JsonDataset:
    """The request's dataset: DICOM JSON (a bare object or an array of one, both seen in clients),
    or DICOM XML (PS3.19) as the one part of ``multipart/related; type="application/dicom+xml"``
    (a bare ``application/dicom+xml`` body is not a UPS-RS media type: 415); within the size limits
    of the settings (413 / 400), checked by ``dicom.validation``."""
    from .limits import read_body

    body = await read_body(request)
    if not body.strip():
        if required:
            raise HTTPProblem(400, "the request needs a DICOM JSON or DICOM XML dataset as its body")
        return {}
    content_type, params = content_type_params(request.headers.get("content-type", ""))
    if content_type == "multipart/related" and params.get("type", "").lower() == DICOM_XML:
        return _from_xml(await _single_part(body, params.get("boundary")))
    if content_type not in _JSON_TYPES:
        raise HTTPProblem(415, f"unsupported Content-Type {content_type or '(none)'!r}; send "
                               f"application/dicom+json or {MULTIPART_XML}")
    try:
        parsed: Any = loads(body)
        if isinstance(parsed, list):
            if len(parsed) != 1:
                raise HTTPProblem(400, f"expected one dataset, got an array of {len(parsed)}")
            parsed = parsed[0]
        return validate(parsed, JsonLimits.of(request.app.state.settings))
    except InvalidDataset as exc:
        raise HTTPProblem(400, f"the body is not a valid DICOM JSON dataset: {exc}") from None


def _from_xml(body: bytes) -> JsonDataset:
    try:
        return from_xml(body)
    except InvalidDataset as exc:
        raise HTTPProblem(400, f"the body is not a valid DICOM XML dataset: {exc}") from None


async def _single_part(body: bytes, boundary: str | None) -> bytes:
    """The body of the one part of a multipart/related request (a workitem is one dataset)."""
    if not boundary:
        raise HTTPProblem(400, "the multipart/related Content-Type has no boundary")
    try:
        bodies = await read_parts(body, boundary)
    except MultipartError as exc:
        raise HTTPProblem(400, f"the body is not a multipart/related message: {exc}") from None
    if len(bodies) != 1:
        raise HTTPProblem(400, f"expected one part holding one dataset, got {len(bodies)}")
    part_type, data = bodies[0]
    if part_type not in (DICOM_XML, ""):
        raise HTTPProblem(415, f"unsupported part type {part_type!r}; send {DICOM_XML}")
    return data


def dicom_json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(jsontext.dumps(payload), status_code=status, media_type=DICOM_JSON, headers=headers)


def dicom_response(media: str, datasets: list[JsonDataset], status: int = 200,
                   headers: dict[str, str] | None = None) -> Response:
    """``datasets`` in the negotiated media type: a DICOM JSON array, one DICOM XML part per
    dataset, or (bare XML: a single dataset) one DICOM XML document."""
    if media == MULTIPART_XML:
        body, content_type = related([to_xml(ds) for ds in datasets], DICOM_XML)
        return Response(body, status_code=status, headers={**(headers or {}), "Content-Type": content_type})
    if media == DICOM_XML:
        return Response(to_xml(datasets[0]), status_code=status, media_type=DICOM_XML, headers=headers)
    return dicom_json(datasets, status, headers)


def warning_header(request: Request, text: str) -> dict[str, str]:
    return {"Warning": f'299 {service_url(request)}: {text}'}


def outcome_response(
    request: Request, outcome: Outcome | PolicyOutcome, transaction: Transaction, detail: str | None = None,
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
