"""The server as Query/Retrieve SCU of one archive (Study Root): C-FIND, C-MOVE, C-GET.

Blocking calls, made from worker threads. ``ArchiveUnreachable``: no association, or it broke
or timed out (worth a retry); ``ArchiveRefused``: the archive answered with a failure status.
Open associations are kept in ``active`` so that stopping the server can abort them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from pydicom import Dataset
from pynetdicom import AE, build_role, evt
from pynetdicom.association import Association
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelFind as FIND,
)
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelGet as GET,
)
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelMove as MOVE,
)

from ..dimse.contexts import STORAGE_TRANSFER_SYNTAXES
from .archives import Archive

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 30  # ACSE, DIMSE and network timeouts (a retrieve's responses keep it alive)
UIDS_PER_REQUEST = 200  # UID list matching in one C-MOVE / C-GET identifier (UI values: 64 KB)
PENDING = (0xFF00, 0xFF01)


class ArchiveUnreachable(Exception):
    """No association with the archive, or it ended without an answer."""


class ArchiveRefused(Exception):
    """The archive answered a request with a failure status."""


# SOP Instance UID -> (Series Instance UID, SOP Class UID)
Instances = dict[str, tuple[str, str]]
Store = Callable[[Dataset], int]  # C-GET: store one received instance, give the C-STORE status


class ArchiveClient:
    def __init__(self, archive: Archive, calling_aet: str, active: set[Association], lock: threading.Lock):
        self.archive = archive
        self.calling_aet = calling_aet
        self.active = active
        self.lock = lock

    @contextmanager
    def _association(self, ae: AE, handlers: list | None = None, roles: list | None = None
                     ) -> Iterator[Association]:
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = ae.connection_timeout = TIMEOUT_SECONDS
        a = self.archive
        assoc = ae.associate(a.host, a.port, ae_title=a.aet, evt_handlers=handlers or [], ext_neg=roles or [])
        if not assoc.is_established:
            why = "rejected the association" if assoc.is_rejected else "did not answer (connection refused, " \
                  "aborted or timed out)"
            raise ArchiveUnreachable(f"archive {a} {why}")
        with self.lock:
            self.active.add(assoc)
        try:
            yield assoc
        finally:
            with self.lock:
                self.active.discard(assoc)
            if assoc.is_established:
                assoc.release()

    def _responses(self, replies: Iterable[tuple[Dataset, Dataset | None]], what: str
                   ) -> Iterator[tuple[int, Dataset | None]]:
        """(status, identifier) of each response; ArchiveUnreachable / ArchiveRefused on failures."""
        for status, identifier in replies:
            if "Status" not in status:
                raise ArchiveUnreachable(f"archive {self.archive}: no answer to the {what} (association ended)")
            code = int(status.Status)
            if code not in PENDING and code != 0 and code & 0xF000 != 0xB000:
                comment = status.get("ErrorComment", "")
                raise ArchiveRefused(f"archive {self.archive} answered the {what} with status 0x{code:04X}"
                                     + (f" ({comment})" if comment else ""))
            yield code, identifier

    def _find(self, assoc: Association, identifier: Dataset) -> list[Dataset]:
        return [ds for code, ds in self._responses(assoc.send_c_find(identifier, FIND), "C-FIND")
                if code in PENDING and ds is not None]

    def find_studies(self, **keys: str) -> list[str]:
        """Study Instance UIDs of the studies matching ``keys`` (e.g. PatientID, AccessionNumber)."""
        ae = AE(ae_title=self.calling_aet)
        ae.add_requested_context(FIND)
        query = _identifier("STUDY", StudyInstanceUID="", **keys)
        with self._association(ae) as assoc:
            found = self._find(assoc, query)
        return sorted({str(ds.StudyInstanceUID) for ds in found if ds.get("StudyInstanceUID")})

    def study_instances(self, study_uid: str) -> Instances | None:
        """The study's instances at the archive (SERIES- then IMAGE-level C-FIND, hierarchical);
        None when the archive does not hold the study."""
        ae = AE(ae_title=self.calling_aet)
        ae.add_requested_context(FIND)
        instances: Instances = {}
        with self._association(ae) as assoc:
            if not self._find(assoc, _identifier("STUDY", StudyInstanceUID=study_uid)):
                return None
            series = self._find(assoc, _identifier("SERIES", StudyInstanceUID=study_uid, SeriesInstanceUID=""))
            for s in series:
                series_uid = str(s.SeriesInstanceUID)
                query = _identifier("IMAGE", StudyInstanceUID=study_uid, SeriesInstanceUID=series_uid,
                                    SOPInstanceUID="", SOPClassUID="")
                for ds in self._find(assoc, query):
                    instances[str(ds.SOPInstanceUID)] = (series_uid, str(ds.get("SOPClassUID", "")))
        return instances

    def move(self, requests: list[Dataset], destination: str) -> None:
        """C-MOVE each identifier to ``destination`` (this server's AE title)."""
        ae = AE(ae_title=self.calling_aet)
        ae.add_requested_context(MOVE)
        with self._association(ae) as assoc:
            for identifier in requests:
                for _ in self._responses(assoc.send_c_move(identifier, destination, MOVE), "C-MOVE"):
                    pass

    def get(self, requests: list[Dataset], sop_classes: set[str], store: Store) -> None:
        """C-GET each identifier; ``store`` receives the instances (C-STORE on this association)."""
        ae = AE(ae_title=self.calling_aet)
        ae.add_requested_context(GET)
        for sop_class in sorted(sop_classes)[:127]:
            ae.add_requested_context(sop_class, STORAGE_TRANSFER_SYNTAXES)
        roles = [build_role(sop_class, scp_role=True) for sop_class in sorted(sop_classes)[:127]]

        def on_store(event) -> int:
            ds = event.dataset
            ds.file_meta = event.file_meta
            return store(ds)

        with self._association(ae, [(evt.EVT_C_STORE, on_store)], roles) as assoc:
            for identifier in requests:
                for _ in self._responses(assoc.send_c_get(identifier, GET), "C-GET"):
                    pass


def _identifier(level: str, **keys: str | list[str]) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


def retrieve_requests(study_uid: str, remote: Instances, missing: set[str]) -> list[Dataset]:
    """The C-MOVE / C-GET identifiers for the ``missing`` instances: the whole study when none of
    it is here; else SERIES level for series wholly missing, IMAGE level (per series) for the rest."""
    if missing == set(remote):
        return [_identifier("STUDY", StudyInstanceUID=study_uid)]
    by_series: dict[str, list[str]] = {}
    for sop, (series_uid, _) in remote.items():
        by_series.setdefault(series_uid, []).append(sop)
    whole = sorted(s for s, sops in by_series.items() if all(sop in missing for sop in sops))
    requests = [_identifier("SERIES", StudyInstanceUID=study_uid, SeriesInstanceUID=chunk)
                for chunk in _chunks(whole)]
    for series_uid, sops in sorted(by_series.items()):
        wanted = sorted(sop for sop in sops if sop in missing)
        if wanted and series_uid not in whole:
            requests += [_identifier("IMAGE", StudyInstanceUID=study_uid, SeriesInstanceUID=series_uid,
                                     SOPInstanceUID=chunk) for chunk in _chunks(wanted)]
    return requests


def _chunks(uids: list[str]) -> list[list[str]]:
    return [uids[i:i + UIDS_PER_REQUEST] for i in range(0, len(uids), UIDS_PER_REQUEST)]
