"""C-ECHO and C-STORE handlers: C-STORE hands the instance as received (its File Meta and the
dataset's bytes, not decoded here) to ``services.ingest``, which parses it once and writes those bytes."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from pydicom import Dataset
from pynetdicom.events import Event

from ..auth.principal import INGEST
from ..db.faults import database_unavailable
from ..dicom.statuses import Storage, Verification

if TYPE_CHECKING:
    from .server import DimseServer

log = logging.getLogger(__name__)


def handle_echo(event: Event) -> int:
    return Verification.SUCCESS


def _failure(code: int, comment: str) -> Dataset:
    rsp = Dataset()
    rsp.Status = code
    rsp.ErrorComment = comment[:64]
    return rsp


def _affected_sop_instance(event: Event) -> str:
    try:
        return str(event.request.AffectedSOPInstanceUID)
    except Exception:  # noqa: BLE001 - for the log only
        return "(unreadable SOP Instance UID)"


def make_store_handler(dimse: DimseServer):
    def handle_store(event: Event) -> int | Dataset:
        ingest = dimse.services.ingest
        requestor = event.assoc.requestor
        principal = dimse.identity.principal(event.assoc)
        if not principal.has(INGEST):
            log.warning("C-STORE from %s refused: it has no ingest role (roles: %s)", requestor.ae_title,
                        ", ".join(sorted(principal.roles)) or "none")
            return _failure(Storage.NOT_AUTHORIZED, "not authorized to store: no ingest role")
        sop_uid = _affected_sop_instance(event)  # from the command set: a corrupt dataset cannot break it
        try:  # the instance as received (File Meta + the dataset's bytes): not decoded here, never re-encoded
            data = event.encoded_dataset()
        except Exception as exc:  # noqa: BLE001 - e.g. File Meta that cannot be encoded from the command set
            log.warning("C-STORE: cannot read the dataset: %s", exc)
            return _failure(Storage.CANNOT_UNDERSTAND, f"cannot read the dataset: {exc}")
        try:
            dimse.bridge.call(ingest.store(data, source_ae=requestor.ae_title, source_host=requestor.address,
                                           receiving_ae=event.assoc.acceptor.ae_title))
        except ValueError as exc:  # IngestError: refused for a stated reason, with its status
            reason = getattr(exc, "reason", None) or str(exc)
            code = getattr(exc, "status", None) or Storage.DATASET_DOES_NOT_MATCH_SOP_CLASS
            log.info("C-STORE %s from %s refused (0x%04X): %s", sop_uid, requestor.ae_title, code, reason)
            return _failure(code, str(reason))
        except Exception as exc:
            if database_unavailable(exc):  # refused for now (A700): the SCU may send it again later
                log.warning("C-STORE %s from %s: the database is unavailable", sop_uid, requestor.ae_title)
                return _failure(Storage.OUT_OF_RESOURCES, "database unavailable; retry later")
            log.exception("C-STORE %s from %s failed", sop_uid, requestor.ae_title)
            return _failure(Storage.CANNOT_UNDERSTAND, f"processing failure: {type(exc).__name__}")
        return Storage.SUCCESS

    return handle_store
