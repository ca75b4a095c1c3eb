"""C-FIND on UPS Pull, Watch and Query: the one matcher (``services.ups.search``), one Pending
response per match holding only the requested keys; C-CANCEL honoured between responses."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pydicom import Dataset
from pynetdicom.events import Event

from ..auth.principal import Principal
from ..dicom.dataset import from_pydicom, to_pydicom
from ..dicom.statuses import Find
from ..ups.errors import UPSError

if TYPE_CHECKING:
    from ..ups.search import Page
    from .server import DimseServer

log = logging.getLogger(__name__)

PAGE = 500  # matches fetched per database round trip

FindReply = tuple[int | Dataset, Dataset | None]


def _failure(code: int, comment: str) -> Dataset:
    rsp = Dataset()
    rsp.Status = code
    rsp.ErrorComment = comment[:64]
    return rsp


def make_find_handler(dimse: DimseServer):
    def handle_find(event: Event) -> Iterator[FindReply]:
        from ..dicom.query import QueryError, query_from_identifier
        from . import qr

        if event.request.AffectedSOPClassUID in qr.FIND_CLASSES:  # Query/Retrieve of stored studies
            yield from qr.find(dimse, event)
            return

        try:
            query = query_from_identifier(from_pydicom(event.identifier))
        except (QueryError, ValueError, TypeError) as exc:
            log.info("C-FIND from %s refused: %s", event.assoc.requestor.ae_title, exc)
            yield _failure(Find.IDENTIFIER_DOES_NOT_MATCH, str(exc)), None
            return
        after: int | None = None
        principal = dimse.identity.principal(event.assoc)
        while True:
            if event.is_cancelled:
                yield Find.CANCELED, None
                return
            try:
                page = _search(dimse, query, after, principal)
            except UPSError as exc:  # the association's principal may not search workitems
                yield _failure(exc.outcome.status, exc.detail or exc.outcome.meaning), None
                return
            except Exception as exc:
                log.error("C-FIND failed", exc_info=exc)
                yield _failure(Find.UNABLE_TO_PROCESS, f"unable to process: {type(exc).__name__}"), None
                return
            for match in page.datasets:
                if event.is_cancelled:
                    yield Find.CANCELED, None
                    return
                yield Find.PENDING, to_pydicom(match)
            after = page.last
            if after is None:
                return

    return handle_find


def _search(dimse: DimseServer, query: Any, after: int | None, principal: Principal) -> Page:
    """The next page after ``after`` (keyset: a match is sent once even while workitems change)."""
    return dimse.bridge.call(dimse.services.ups.search(query, after=after, limit=PAGE, count=False,
                                                       principal=principal))
