"""Retrieve jobs over HTTP (an extension, not in PS3.18): queue studies to pull from the archives
and follow them. Thin: parse, call ``retrieve.jobs``, wake the worker."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..auth.http import principal_of
from ..auth.principal import ADMIN, RETRIEVE
from ..dicom.query import QueryError, int_param
from ..dicom.uids import is_valid_uid
from ..dicom.validation import InvalidDataset, loads
from ..retrieve import jobs
from ..retrieve.worker import RetrieveWorker
from .context import services
from .limits import read_body
from .media import HTTPProblem

MAX_STUDIES = 1000  # per request
LO_MAX = 64  # Patient ID and Accession Number are LO / SH values
DEFAULT_LIST_LIMIT = 100


def may_retrieve(request: Request) -> bool:
    """Who may queue and read retrieve jobs: the ``admin`` or ``retrieve`` role (open mode: anyone)."""
    return principal_of(request).has(ADMIN, RETRIEVE)


def _worker(request: Request) -> RetrieveWorker:
    return services(request).retrieve


def _check(request: Request) -> None:
    if not may_retrieve(request):
        raise HTTPProblem(403, "retrieve jobs need the admin or retrieve role")


def job_json(job: jobs.Job, children: list[int] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": job.id, "state": job.state, "study": job.study_uid, "archive": job.archive,
        "instances_present_before": job.instances_present_before, "instances_retrieved": job.instances_retrieved,
        "instances_expected": job.instances_expected, "error": job.error, "attempts": job.attempts,
    }
    if job.is_lookup:
        out.update(patient_id=job.patient_id, accession_number=job.accession_number)
        if children is not None:
            out["jobs"] = children  # the study jobs it queued
    elif job.parent_id is not None:
        out["lookup"] = job.parent_id
    return out


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = loads(await read_body(request))  # within --max-body-size; NaN, deep nesting: 400
    except InvalidDataset as exc:
        raise HTTPProblem(400, str(exc)) from None
    if not isinstance(body, dict):
        raise HTTPProblem(400, 'expected a JSON object: {"studies": [uid, ...]} or '
                               '{"patient_id": ..., "accession_number": ...}')
    return body


def _text(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value.strip() or len(value) > LO_MAX or "\x00" in value \
            or "\\" in value or any(c in value for c in "*?"):
        raise HTTPProblem(400, f"{key} must be a non-empty text of at most {LO_MAX} characters, without "
                               "wildcards (* ?) or backslashes")
    return value.strip()


async def create(request: Request) -> JSONResponse:
    _check(request)
    body = await _body(request)
    worker = _worker(request)
    if "studies" in body:
        if set(body) - {"studies"}:
            raise HTTPProblem(400, "give either studies or patient_id + accession_number, not both")
        studies = body["studies"]
        if not isinstance(studies, list) or not studies or len(studies) > MAX_STUDIES:
            raise HTTPProblem(400, f"studies must be a list of 1 to {MAX_STUDIES} Study Instance UIDs")
        bad = [s for s in studies if not isinstance(s, str) or not is_valid_uid(s)]
        if bad:
            raise HTTPProblem(400, f"not a Study Instance UID: {bad[0]!r}")
    elif set(body) == {"patient_id", "accession_number"}:
        patient_id, accession = _text(body, "patient_id"), _text(body, "accession_number")
    else:
        raise HTTPProblem(400, 'expected {"studies": [uid, ...]} or {"patient_id": ..., "accession_number": ...}')
    if not worker.archives:
        raise HTTPProblem(409, "no archives are configured (--archive NAME=AET@host:port)")
    if "studies" in body:
        ids = await jobs.create_studies(worker.engine, list(dict.fromkeys(studies)))
    else:
        ids = [await jobs.create_lookup(worker.engine, patient_id, accession)]
    worker.wake.set()
    return JSONResponse({"jobs": [{"id": i} for i in ids]}, status_code=202)


async def show(request: Request) -> JSONResponse:
    _check(request)
    try:
        job_id = int_param("id", request.path_params["id"])
    except QueryError:
        raise HTTPProblem(404, "no such retrieve job") from None
    found = await jobs.get(_worker(request).engine, job_id)
    if found is None:
        raise HTTPProblem(404, f"no retrieve job {job_id}")
    return JSONResponse(job_json(*found))


async def index(request: Request) -> JSONResponse:
    _check(request)
    state = request.query_params.get("state")
    if state is not None and state not in jobs.STATES:
        raise HTTPProblem(400, f"state must be one of {', '.join(jobs.STATES)}")
    try:
        limit = int_param("limit", request.query_params.get("limit", str(DEFAULT_LIST_LIMIT)))
    except QueryError as exc:
        raise HTTPProblem(400, str(exc)) from None
    found = await jobs.list_jobs(_worker(request).engine, state, limit)
    return JSONResponse({"jobs": [job_json(job) for job in found]})


def routes() -> list[Route]:
    return [
        Route("/retrieve-jobs", create, methods=["POST"]),
        Route("/retrieve-jobs", index, methods=["GET"]),
        Route("/retrieve-jobs/{id}", show, methods=["GET"]),
    ]
