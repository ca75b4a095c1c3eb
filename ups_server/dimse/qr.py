"""Query/Retrieve SCP for the stored studies: Study Root and Patient Root C-FIND, C-MOVE, C-GET.

C-FIND parses the identifier with the one identifier parser (``dicom.query``) and matches with the
catalog's study / series / instance searches, the ones QIDO-RS uses; each response holds the keys
asked for (plus the unique keys of its level and above). C-MOVE sends to an AE of ``--ae-table``;
C-GET sends on the association itself. Hierarchical queries (PS3.4 C.4.1.2.1): SERIES and IMAGE
level need the Study Instance UID. Who may query and retrieve: ``may_query`` (QIDO/WADO's rule).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pydicom import Dataset, dcmread
from pynetdicom import build_context
from pynetdicom.events import Event
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

from ..auth.principal import ARBITRATOR, READER, Principal
from ..dicom import tags as t
from ..dicom.dataset import JsonDataset, element, first, from_pydicom, to_pydicom, vr_of
from ..dicom.query import Match, Query, QueryError, query_from_identifier
from ..dicom.statuses import Find, Retrieve
from ..ingest import catalog
from ..ingest.service import IngestService
from ..rules import access
from .contexts import UNCOMPRESSED

if TYPE_CHECKING:
    from .server import DimseServer

log = logging.getLogger(__name__)

PATIENT_ROOT = {PatientRootQueryRetrieveInformationModelFind, PatientRootQueryRetrieveInformationModelGet,
                PatientRootQueryRetrieveInformationModelMove}
FIND_CLASSES = {StudyRootQueryRetrieveInformationModelFind, PatientRootQueryRetrieveInformationModelFind}
MOVE_CLASSES = [StudyRootQueryRetrieveInformationModelMove, PatientRootQueryRetrieveInformationModelMove]
GET_CLASSES = [StudyRootQueryRetrieveInformationModelGet, PatientRootQueryRetrieveInformationModelGet]
QR_CLASSES = [*FIND_CLASSES, *MOVE_CLASSES, *GET_CLASSES]

UNIQUE_KEYS = {"PATIENT": [t.PATIENT_ID], "STUDY": [t.STUDY_INSTANCE_UID],
               "SERIES": [t.STUDY_INSTANCE_UID, t.SERIES_INSTANCE_UID],
               "IMAGE": [t.STUDY_INSTANCE_UID, t.SERIES_INSTANCE_UID, t.SOP_INSTANCE_UID]}
PAGE = 500
MAX_SUBOPERATIONS = 65535  # Number of ... Sub-operations are US


class IdentifierError(ValueError):
    """An identifier this SCP cannot answer; the text says why (status A900)."""


def may_query(principal: Principal) -> bool:
    """Who may query and retrieve stored studies: as for QIDO-RS / WADO-RS, a reader, arbitrator
    or admin (open mode: everyone; ingest alone: no one); which studies: ``access.readable_studies``."""
    return principal.has(READER, ARBITRATOR)


def _readable(dimse: DimseServer, principal: Principal, studies: list[str]) -> list[str]:
    """The studies of ``studies`` the principal may read (the others are as if not stored)."""
    engine = _ingest(dimse).engine
    return [s for s in studies if dimse.bridge.call(access.may_read_study(engine, principal, s))]


def _ingest(dimse: DimseServer) -> IngestService:
    """The stored studies (index and files)."""
    return dimse.services.ingest


def _failure(code: int, comment: str) -> Dataset:
    rsp = Dataset()
    rsp.Status = code
    rsp.ErrorComment = comment[:64]
    return rsp


# ---- the identifier --------------------------------------------------------------------------


class Request:
    """A Q/R identifier: its level, its keys as the one parser reads them, the JSON asked for."""

    def __init__(self, identifier: Dataset, sop_class: str):
        self.asked: JsonDataset = from_pydicom(identifier)
        self.patient_root = sop_class in PATIENT_ROOT
        level = str(first(self.asked, t.QUERY_RETRIEVE_LEVEL, "")).strip().upper()
        levels = ("PATIENT", "STUDY", "SERIES", "IMAGE") if self.patient_root else ("STUDY", "SERIES", "IMAGE")
        if level not in levels:
            raise IdentifierError(f"Query/Retrieve Level {level or '(none)'!r} is not one of {', '.join(levels)}")
        self.level = level
        try:
            query = query_from_identifier({tag: e for tag, e in self.asked.items()
                                           if tag not in (t.QUERY_RETRIEVE_LEVEL, t.RETRIEVE_AE_TITLE)})
        except QueryError as exc:
            raise IdentifierError(str(exc)) from None
        self.keys: list[Match] = [m for m in query.keys if not m.is_universal and not m.is_sequence]

    def values(self, tag: str) -> list[str]:
        match = next((m for m in self.keys if m.tag == tag), None)
        return match.values if match else []

    def query(self, skip: tuple[str, ...] = ()) -> Query:
        """The matching keys as a catalog (QIDO-RS) search."""
        return Query(keys=[m for m in self.keys if m.tag not in skip])

    def studies(self) -> list[str]:
        """The Study Instance UIDs a SERIES or IMAGE level request is under (hierarchical)."""
        found = self.values(t.STUDY_INSTANCE_UID)
        if not found:
            raise IdentifierError(f"a {self.level} level request needs the Study Instance UID (0020,000D)")
        return found

    def reply(self, match: JsonDataset, ae_title: str) -> Dataset:
        """The keys asked for, valued from ``match``, and the unique keys of the level and above."""
        out: JsonDataset = {}
        for tag, elem in self.asked.items():
            if tag == t.QUERY_RETRIEVE_LEVEL:
                out[tag] = element("CS", self.level)
            elif tag == t.RETRIEVE_AE_TITLE:
                out[tag] = element("AE", ae_title)
            else:
                out[tag] = match.get(tag) or {"vr": elem.get("vr") or vr_of(tag)}
        for tag in UNIQUE_KEYS[self.level] + ([t.PATIENT_ID] if self.patient_root else []):
            if tag in match:
                out[tag] = match[tag]
        return to_pydicom(out)


# ---- C-FIND ----------------------------------------------------------------------------------


def find(dimse: DimseServer, event: Event) -> Iterator[tuple[int | Dataset, Dataset | None]]:
    """The C-FIND of a Q/R Information Model: one Pending response per match."""
    caller = event.assoc.requestor.ae_title
    principal = dimse.identity.principal(event.assoc)
    if not may_query(principal):
        yield _failure(Find.NOT_AUTHORIZED, "not authorized to query stored studies"), None
        return
    try:
        request = Request(event.identifier, event.request.AffectedSOPClassUID)
        pages = _matches(dimse, request, principal)
        first_page = next(pages, [])
    except IdentifierError as exc:
        log.info("Q/R C-FIND from %s refused: %s", caller, exc)
        yield _failure(Find.IDENTIFIER_DOES_NOT_MATCH, str(exc)), None
        return
    except Exception as exc:
        log.error("Q/R C-FIND failed", exc_info=exc)
        yield _failure(Find.UNABLE_TO_PROCESS, f"unable to process: {type(exc).__name__}"), None
        return
    for page in itertools.chain([first_page], pages):
        for match in page:
            if event.is_cancelled:
                yield Find.CANCELED, None
                return
            yield Find.PENDING, request.reply(match, dimse.settings.ae_title)


def _matches(dimse: DimseServer, request: Request, principal: Principal) -> Iterator[list[JsonDataset]]:
    """Pages of matches (DICOM JSON) of ``request`` at its level, among the studies ``principal``
    may read."""
    engine = _ingest(dimse).engine
    call = dimse.bridge.call
    if request.level in ("PATIENT", "STUDY"):
        offset, seen = 0, set()
        within = access.readable_studies(principal)
        while page := call(catalog.search_studies(engine, request.query(), PAGE, offset, within)):
            offset += len(page)
            if request.level == "STUDY":
                yield page
                continue
            patients = _patients(page, seen)
            if patients:
                yield patients
        return
    for study in _readable(dimse, principal, request.studies()):
        if request.level == "SERIES":
            keys = request.query(skip=(t.STUDY_INSTANCE_UID,))
            found = call(catalog.search_series(engine, study, keys, None, 0))
        else:
            series = request.values(t.SERIES_INSTANCE_UID)
            keys = request.query(skip=(t.STUDY_INSTANCE_UID, t.SERIES_INSTANCE_UID))
            found = [m for se in (series or [None])
                     for m in call(catalog.search_instances(engine, study, se, keys, None, 0))]
        if found:
            yield found


def _patients(studies: list[JsonDataset], seen: set[str]) -> list[JsonDataset]:
    """PATIENT level: each patient once, with its patient attributes (from its first study)."""
    out = []
    for study in studies:
        pid = first(study, t.PATIENT_ID, "")
        if pid in seen:
            continue
        seen.add(pid)
        out.append({tag: value for tag, value in study.items() if tag.startswith("0010")})
    return out


# ---- C-MOVE and C-GET ------------------------------------------------------------------------


def _instances(dimse: DimseServer, request: Request, principal: Principal) -> list[dict[str, Any]]:
    """The stored instances a C-MOVE / C-GET identifier names, of the studies ``principal`` may read."""
    engine = _ingest(dimse).engine
    call = dimse.bridge.call
    if request.level == "PATIENT":
        patients = request.values(t.PATIENT_ID)
        if not patients:
            raise IdentifierError("a PATIENT level retrieve needs the Patient ID (0010,0020)")
        studies = [first(s, t.STUDY_INSTANCE_UID)
                   for s in call(catalog.search_studies(engine, request.query(), None, 0))]
    else:
        studies = request.studies()
    studies = _readable(dimse, principal, studies)
    series = set(request.values(t.SERIES_INSTANCE_UID)) if request.level in ("SERIES", "IMAGE") else set()
    sops = set(request.values(t.SOP_INSTANCE_UID)) if request.level == "IMAGE" else set()
    if request.level == "SERIES" and not series:
        raise IdentifierError("a SERIES level retrieve needs the Series Instance UID (0020,000E)")
    if request.level == "IMAGE" and not sops:
        raise IdentifierError("an IMAGE level retrieve needs the SOP Instance UID (0008,0018)")
    rows = [row for study in studies for row in call(catalog.instance_rows(engine, study))]
    return [row for row in rows if (not series or row["series_uid"] in series)
            and (not sops or row["sop_instance_uid"] in sops)]


def _datasets(dimse: DimseServer, event: Event, rows: list[dict[str, Any]]
              ) -> Iterator[tuple[int, Dataset | None]]:
    for row in rows:
        if event.is_cancelled:
            yield Retrieve.CANCELED, None
            return
        yield Retrieve.PENDING, dcmread(_ingest(dimse).path_of(row["path"]))


def _resolve(dimse: DimseServer, event: Event) -> tuple[list[dict[str, Any]] | None, Dataset | None]:
    """(the instances to send, None) or (None, the failure to answer)."""
    principal = dimse.identity.principal(event.assoc)
    if not may_query(principal):
        return None, _failure(Retrieve.NOT_AUTHORIZED, "not authorized to retrieve stored studies")
    try:
        rows = _instances(dimse, Request(event.identifier, event.request.AffectedSOPClassUID), principal)
    except IdentifierError as exc:
        log.info("Q/R retrieve from %s refused: %s", event.assoc.requestor.ae_title, exc)
        return None, _failure(Retrieve.IDENTIFIER_DOES_NOT_MATCH, str(exc))
    except Exception as exc:
        log.error("Q/R retrieve failed", exc_info=exc)
        return None, _failure(Retrieve.UNABLE_TO_PROCESS, f"unable to process: {type(exc).__name__}")
    if len(rows) > MAX_SUBOPERATIONS:
        return None, _failure(Retrieve.UNABLE_TO_PROCESS, f"{len(rows)} instances: retrieve fewer at once")
    return rows, None


def store_contexts(rows: list[dict[str, Any]]) -> list:
    """Presentation contexts for sending ``rows``: each SOP class with its stored and the
    uncompressed transfer syntaxes (at most 128)."""
    syntaxes: dict[str, list[str]] = {}
    for row in rows:
        wanted = syntaxes.setdefault(row["sop_class_uid"], list(UNCOMPRESSED[:2]))
        if row["transfer_syntax"] not in wanted:
            wanted.insert(0, row["transfer_syntax"])
    return [build_context(sop_class, ts) for sop_class, ts in list(syntaxes.items())[:128]]


def make_move_handler(dimse: DimseServer):
    def handle_move(event: Event) -> Iterator[Any]:
        destination = event.move_destination.decode("ascii", "replace").strip() \
            if isinstance(event.move_destination, bytes) else str(event.move_destination).strip()
        address = dimse.settings.ae_table.get(destination)
        if address is None:
            log.info("C-MOVE from %s: move destination %r is not in ae_table", event.assoc.requestor.ae_title,
                     destination)
            yield None, None  # pynetdicom answers A801 Move Destination Unknown
            return
        host, _, port = address.rpartition(":")
        rows, failure = _resolve(dimse, event)
        if failure is not None:
            yield host or "127.0.0.1", int(port)
            yield 1
            yield failure, None
            return
        yield host or "127.0.0.1", int(port), {"contexts": store_contexts(rows)}
        yield len(rows)
        yield from _datasets(dimse, event, rows)

    return handle_move


def make_get_handler(dimse: DimseServer):
    def handle_get(event: Event) -> Iterator[Any]:
        rows, failure = _resolve(dimse, event)
        if failure is not None:
            yield 1
            yield failure, None
            return
        yield len(rows)
        yield from _datasets(dimse, event, rows)

    return handle_get
