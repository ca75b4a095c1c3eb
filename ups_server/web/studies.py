"""STOW-RS, QIDO-RS and WADO-RS (PS3.18 10.4-10.6) over the ingest service: thin routes."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ..audit import INSTANCES_ACCESSED, Actor, record_now
from ..auth.http import client_address, principal_of
from ..auth.principal import ADMIN, ARBITRATOR, INGEST, READER
from ..db.faults import DatabaseUnavailable, database_unavailable
from ..dicom import tags as t
from ..dicom.dataset import JsonDataset, element
from ..dicom.query import Query, QueryError, label, parse_http_query
from ..dicom.statuses import FIND_HTTP, RETRIEVE_HTTP, STORAGE_HTTP, Find, Retrieve, Storage, stow_http_status
from ..ingest import catalog
from ..ingest.model import IngestError, StoreResult
from ..ingest.service import IngestService
from ..rules import access
from .context import services
from .limits import more_results_warning, page_size
from .media import DICOM_JSON, HTTPProblem, dicom_json, dicom_response, negotiate, service_url
from .multipart import MultipartError, Part, content_type_params, parts
from .search import query_warnings, warning_headers

log = logging.getLogger(__name__)

DICOM = "application/dicom"
_BATCH = 32  # parts stored in one transaction (one study lock, one rules pass)
_BATCH_MEMORY = 8 << 20  # a batch is stored once its parts in memory reach this many bytes
_BATCHES_IN_FLIGHT = 2  # with the batch being read: a request holds at most about 3 x _BATCH_MEMORY
_Failure = tuple[str | None, str | None, int, str]  # SOP class, SOP instance, status, reason
_PROCESSING_FAILURE: _Failure = (None, None, Storage.PROCESSING_FAILURE, "processing failure")


def _ingest(request: Request) -> IngestService:
    return services(request).ingest


def _problem(status: int, message: str) -> JSONResponse:
    return JSONResponse({"status": status, "message": message}, status_code=status)


# ---- STOW-RS ----------------------------------------------------------------------------------


async def _may_read(request: Request, study: str | None = None,
                    not_authorized: int = FIND_HTTP[Find.NOT_AUTHORIZED]) -> JSONResponse | None:
    """None when the principal may read (``study``, else studies at all); else the refusal:
    ``not_authorized`` (the service class's, 403) without a reading role (ingest alone reads
    nothing), 404 for a study it may not see."""
    principal = principal_of(request)
    if not principal.has(READER, ARBITRATOR):
        return _problem(not_authorized, "reading studies needs the reader, arbitrator or admin role")
    if study is not None and not await access.may_read_study(_ingest(request).engine, principal, study):
        return _problem(404, "no such study, series or instance")
    return None


async def stow(request: Request) -> Response:
    if not principal_of(request).has(INGEST):
        return _problem(STORAGE_HTTP[Storage.NOT_AUTHORIZED], "storing instances needs the ingest role")
    ctype, params = content_type_params(request.headers.get("content-type", ""))
    part_type = params.get("type", DICOM).lower()
    if ctype != "multipart/related" or part_type != DICOM:
        return _problem(415, f"unsupported Content-Type {request.headers.get('content-type')!r}; send "
                             'multipart/related; type="application/dicom"')
    boundary = params.get("boundary")
    if not boundary:
        return _problem(STORAGE_HTTP[Storage.CANNOT_UNDERSTAND],
                        "the multipart/related Content-Type has no boundary")
    ingest = _ingest(request)
    study = request.path_params.get("study")
    host = request.client.host if request.client else None
    slots = asyncio.Semaphore(_BATCHES_IN_FLIGHT)  # store a batch while the next parts arrive

    async def store(batch: list[Part]) -> list[StoreResult | _Failure]:
        outcomes: list[StoreResult | _Failure | None] = [_unstorable(part) for part in batch]
        storable = [k for k, outcome in enumerate(outcomes) if outcome is None]
        try:
            results = await ingest.store_many([batch[k].body for k in storable], source_host=host,
                                              expected_study=study)
            for k, result in zip(storable, results, strict=True):
                outcomes[k] = result if isinstance(result, StoreResult) else _failure(result)
        except Exception as exc:  # a database or disk failure: this batch fails (nothing of it is kept), the others go on
            if database_unavailable(exc):
                unavailable.append(exc)
                log.warning("STOW-RS: %d part(s) not stored: the database is unavailable", len(storable))
            else:
                log.exception("STOW-RS: storing %d part(s) failed", len(storable))
        finally:
            for part in batch:
                part.discard()
            slots.release()
        return [_PROCESSING_FAILURE if outcome is None else outcome for outcome in outcomes]

    tasks: list[asyncio.Task[list[StoreResult | _Failure]]] = []
    unavailable: list[Exception] = []
    batch: list[Part] = []
    broken: MultipartError | None = None

    async def flush() -> None:
        await slots.acquire()
        tasks.append(asyncio.create_task(store(batch.copy())))
        batch.clear()

    try:
        max_part = request.app.state.settings.max_stow_part_size
        in_memory = 0
        async for part in parts(request.stream(), boundary, ingest.blobs.spool, max_part):
            batch.append(part)
            in_memory += len(part.data or b"")
            if len(batch) == _BATCH or in_memory >= _BATCH_MEMORY:
                await flush()
                in_memory = 0
    except MultipartError as exc:
        broken = exc
    if batch:
        await flush()
    outcomes = [o for batch_outcomes in await asyncio.gather(*tasks) for o in batch_outcomes]
    stored = [o for o in outcomes if isinstance(o, StoreResult)]
    failed = [o for o in outcomes if not isinstance(o, StoreResult)]
    if unavailable and not stored:  # nothing kept: the client should send it all again later (503)
        raise DatabaseUnavailable("STOW-RS: the database is unavailable") from unavailable[0]
    if broken is not None:
        if not outcomes:
            return _problem(STORAGE_HTTP[Storage.CANNOT_UNDERSTAND],
                            f"the body is not a multipart/related message: {broken}")
        failed.append((None, None, Storage.CANNOT_UNDERSTAND, str(broken)))
    if not stored and not failed:
        return _problem(STORAGE_HTTP[Storage.CANNOT_UNDERSTAND], "the request has no parts")
    status = stow_http_status(len(stored), [f[2] for f in failed])
    response = _stow_response(service_url(request), stored, failed)
    media = _stow_media(request)  # dcm4che's stowrs asks for XML
    if media == DICOM_JSON:
        return dicom_json(response, status)  # one object, not an array (PS3.18 10.5.3)
    return dicom_response(media, [response], status)


def _stow_media(request: Request) -> str:
    """DICOM XML when the client prefers it, else DICOM JSON (also for an Accept we cannot
    satisfy: the instances are stored either way, and the answer says which)."""
    try:
        return negotiate(request, bare_xml=True)
    except HTTPProblem:
        return DICOM_JSON


def _unstorable(part: Part) -> _Failure | None:
    if part.too_large:
        return (None, None, Storage.OUT_OF_RESOURCES, "the part is larger than max_stow_part_size")
    if part.content_type not in (DICOM, ""):
        return (None, None, Storage.CANNOT_UNDERSTAND, f"part of type {part.content_type!r}; only {DICOM} is stored")
    if not part.complete:
        return (None, None, Storage.CANNOT_UNDERSTAND, "the body ended inside this part (no closing delimiter)")
    return None


def _failure(exc: IngestError) -> _Failure:
    return (exc.sop_class_uid, exc.sop_instance_uid, exc.status, exc.reason)


def _stow_response(base: str, stored: list[StoreResult], failed: list[_Failure]) -> JsonDataset:
    ds: JsonDataset = {}
    studies = {r.study_uid for r in stored}
    if len(studies) == 1:
        ds[t.RETRIEVE_URL] = element("UR", f"{base}/studies/{next(iter(studies))}")
    if failed:
        ds[t.FAILED_SOP_SEQUENCE] = {"vr": "SQ", "Value": [
            {t.REFERENCED_SOP_CLASS_UID: element("UI", *([cls] if cls else [])),
             t.REFERENCED_SOP_INSTANCE_UID: element("UI", *([sop] if sop else [])),
             t.FAILURE_REASON: element("US", status)} for cls, sop, status, _ in failed]}
    if stored:
        ds[t.REFERENCED_SOP_SEQUENCE] = {"vr": "SQ", "Value": [
            {t.REFERENCED_SOP_CLASS_UID: element("UI", r.sop_class_uid),
             t.REFERENCED_SOP_INSTANCE_UID: element("UI", r.sop_instance_uid),
             t.RETRIEVE_URL: element("UR", base + r.retrieve_path)} for r in stored]}
    return ds


# ---- QIDO-RS ----------------------------------------------------------------------------------


def _qido_query(request: Request) -> tuple[Query, int]:
    """The QIDO-RS query (the parser UPS search and C-FIND use, PS3.18 8.3.4) and its page size:
    one more row than answered is fetched, to tell whether more remain (PS3.18 8.3.4.4)."""
    try:
        query = parse_http_query(request.query_params.multi_items())
    except QueryError as exc:
        raise HTTPProblem(FIND_HTTP[Find.IDENTIFIER_DOES_NOT_MATCH], f"invalid query: {exc}") from None
    return query, page_size(request, query.limit)


def _qido_answer(request: Request, query: Query, limit: int, level: catalog.Level, found: list[JsonDataset],
                 name: str) -> Response:
    """The matches with their URLs; a Warning names the keys the level does not support (ignored),
    what the query asked that the server does not do (fuzzy matching and the like), and whether
    more results remain."""
    warnings = query_warnings(query)
    ignored = catalog.unsupported(query, level)
    if ignored:
        warnings.append("The following attributes are not supported as matching keys at this level and "
                        f"were ignored: {', '.join(label(tag) for tag in ignored)}")
    if len(found) > limit:
        found = found[:limit]
        warnings.append(more_results_warning(None))
    return dicom_json(_with_urls(service_url(request), found, name), headers=warning_headers(request, warnings))


def _with_urls(base: str, found: list[JsonDataset], level: str) -> list[JsonDataset]:
    for ds in found:
        st = ds.get(t.STUDY_INSTANCE_UID, {}).get("Value", [None])[0]
        url = f"{base}/studies/{st}"
        if level in ("series", "instance"):
            url += f"/series/{ds[t.SERIES_INSTANCE_UID]['Value'][0]}"
        if level == "instance":
            url += f"/instances/{ds[t.SOP_INSTANCE_UID]['Value'][0]}"
        ds[t.RETRIEVE_URL] = element("UR", url)
    return found


async def qido_studies(request: Request) -> Response:
    if refused := await _may_read(request):
        return refused
    query, limit = _qido_query(request)
    found = await catalog.search_studies(_ingest(request).engine, query, limit + 1, query.offset,
                                         access.readable_studies(principal_of(request)))
    return _qido_answer(request, query, limit, catalog.STUDY, found, "study")


async def qido_series(request: Request) -> Response:
    if refused := await _may_read(request, request.path_params["study"]):
        return refused
    query, limit = _qido_query(request)
    found = await catalog.search_series(_ingest(request).engine, request.path_params["study"], query,
                                        limit + 1, query.offset)
    return _qido_answer(request, query, limit, catalog.SERIES, found, "series")


async def qido_instances(request: Request) -> Response:
    if refused := await _may_read(request, request.path_params["study"]):
        return refused
    query, limit = _qido_query(request)
    found = await catalog.search_instances(_ingest(request).engine, request.path_params["study"],
                                           request.path_params.get("series"), query, limit + 1, query.offset)
    return _qido_answer(request, query, limit, catalog.INSTANCE, found, "instance")


# ---- WADO-RS ----------------------------------------------------------------------------------


async def _rows(request: Request, with_metadata: bool = False) -> list[dict[str, Any]]:
    """The instances a WADO-RS request reads; the read is audited (DICOM Instances Accessed)."""
    p = request.path_params
    engine = _ingest(request).engine
    rows = await catalog.instance_rows(engine, p["study"], p.get("series"), p.get("instance"), with_metadata)
    if rows:
        what = "metadata" if with_metadata else "retrieve"
        await record_now(engine, INSTANCES_ACCESSED, Actor.of(principal_of(request), client_address(request)),
                         what, study=p["study"], detail=f"{len(rows)} instance(s)")
    return rows


def _accepts_dicom(request: Request) -> bool:
    accept = request.headers.get("accept") or "*/*"
    return any(media in accept.lower() for media in ("multipart/related", DICOM, "*/*", "multipart/*"))


async def wado(request: Request) -> Response:
    if refused := await _may_read(request, request.path_params["study"],
                                  RETRIEVE_HTTP[Retrieve.NOT_AUTHORIZED]):
        return refused
    if not _accepts_dicom(request):
        return _problem(406, 'this resource is answered as multipart/related; type="application/dicom"')
    rows = await _rows(request)
    if not rows:
        return _problem(404, "no such study, series or instance")
    ingest = _ingest(request)
    boundary = uuid.uuid4().hex

    async def body() -> AsyncIterator[bytes]:  # each instance streamed from the blob store
        for row in rows:
            yield (f"--{boundary}\r\nContent-Type: {DICOM}; transfer-syntax={row['transfer_syntax']}\r\n"
                   f"Content-Length: {row['size']}\r\n\r\n").encode()
            async for chunk in ingest.blobs.read(row["path"]):
                yield chunk
            yield b"\r\n"
        yield f"--{boundary}--\r\n".encode()

    media = f'multipart/related; type="{DICOM}"; boundary={boundary}'
    return StreamingResponse(body(), media_type=media)


async def metadata(request: Request) -> Response:
    if refused := await _may_read(request, request.path_params["study"],
                                  RETRIEVE_HTTP[Retrieve.NOT_AUTHORIZED]):
        return refused
    rows = await _rows(request, with_metadata=True)
    if not rows:
        return _problem(404, "no such study, series or instance")
    return dicom_json([row["metadata"] for row in rows])


# ---- deletion (extension) --------------------------------------------------------------------


async def delete_study(request: Request) -> Response:
    """DELETE /studies/{study} (admin): the instances go (index and files) and the rules reconcile the
    study's workitems in the same transaction; the answer says what changed."""
    principal = principal_of(request)
    if not principal.has(ADMIN):
        return _problem(403, "deleting a study needs the admin role")
    study = request.path_params["study"]
    deleted = await _ingest(request).delete_study(study, Actor.of(principal, client_address(request)))
    if deleted is None:
        return _problem(404, f"study {study} is not stored")
    body: dict[str, Any] = {"StudyInstanceUID": study, "instances": deleted.instances}
    for effect in deleted.effects:
        body.update(effect.summary())
    return JSONResponse(body)


def routes() -> list[Route]:
    s, se, i = "/studies/{study}", "/studies/{study}/series/{series}", "/studies/{study}/series/{series}/instances/{instance}"
    return [
        Route("/studies", stow, methods=["POST"]),
        Route("/studies", qido_studies, methods=["GET"]),
        Route(s, stow, methods=["POST"]),
        Route(s, wado, methods=["GET"]),
        Route(s, delete_study, methods=["DELETE"]),
        Route(f"{s}/metadata", metadata, methods=["GET"]),
        Route(f"{s}/series", qido_series, methods=["GET"]),
        Route(f"{s}/instances", qido_instances, methods=["GET"]),
        Route(se, wado, methods=["GET"]),
        Route(f"{se}/metadata", metadata, methods=["GET"]),
        Route(f"{se}/instances", qido_instances, methods=["GET"]),
        Route(i, wado, methods=["GET"]),
        Route(f"{i}/metadata", metadata, methods=["GET"]),
    ]
