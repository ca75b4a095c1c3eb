"""C-ECHO and C-STORE handlers: C-STORE hands the instance to ``server.ingest``."""

from __future__ import annotations

import inspect
import logging
from typing import TYPE_CHECKING, Any

from pydicom import Dataset
from pynetdicom.events import Event

from ..auth.principal import INGEST
from . import status

if TYPE_CHECKING:
    from .server import DimseServer

log = logging.getLogger(__name__)


def handle_echo(event: Event) -> int:
    return status.SUCCESS


def _failure(code: int, comment: str) -> Dataset:
    rsp = Dataset()
    rsp.Status = code
    rsp.ErrorComment = comment[:64]
    return rsp


async def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    result = fn(*args, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    return result


def make_store_handler(dimse: DimseServer):
    def handle_store(event: Event) -> int | Dataset:
        ingest = getattr(dimse.server, "ingest", None)
        if ingest is None:
            log.warning("C-STORE from %s refused: this server has no ingest service", event.assoc.requestor.ae_title)
            return _failure(status.STORE_CANNOT_UNDERSTAND, "no ingest service is configured")
        try:
            ds = event.dataset
            ds.file_meta = event.file_meta
        except Exception as exc:  # noqa: BLE001 - an undecodable dataset is answered, not raised
            log.warning("C-STORE: cannot decode the dataset: %s", exc)
            return _failure(status.STORE_CANNOT_UNDERSTAND, f"cannot decode the dataset: {exc}")
        requestor = event.assoc.requestor
        principal = dimse.identity.principal(event.assoc)
        if not principal.has(INGEST):
            log.warning("C-STORE from %s refused: it has no ingest role (roles: %s)", requestor.ae_title,
                        ", ".join(sorted(principal.roles)) or "none")
            return _failure(status.NOT_AUTHORIZED, "not authorized to store: no ingest role")
        try:
            dimse.bridge.call(_call(ingest.store, ds, source_ae=requestor.ae_title,
                                    source_host=requestor.address, receiving_ae=event.assoc.acceptor.ae_title))
        except ValueError as exc:  # IngestError: refused for a stated reason, with its status
            reason = getattr(exc, "reason", None) or str(exc)
            code = getattr(exc, "status", None) or status.STORE_DATASET_DOES_NOT_MATCH
            log.info("C-STORE %s from %s refused (0x%04X): %s", ds.get("SOPInstanceUID"), requestor.ae_title,
                     code, reason)
            return _failure(code, str(reason))
        except Exception as exc:
            log.exception("C-STORE %s from %s failed", ds.get("SOPInstanceUID"), requestor.ae_title)
            return _failure(status.STORE_CANNOT_UNDERSTAND, f"processing failure: {type(exc).__name__}")
        return status.SUCCESS

    return handle_store
