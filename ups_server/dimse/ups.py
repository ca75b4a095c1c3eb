"""UPS N-CREATE / N-SET / N-GET / N-ACTION handlers: thin adapters over ``services.ups``.

The SOP class named in a request is not checked against the presentation context, so
N-SET/N-GET/N-ACTION naming UPS Push on a Pull or Watch context are accepted (UPS-SOP-02).
The requester of every request is the calling AE title.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydicom import Dataset
from pynetdicom import evt
from pynetdicom.events import Event

from ..auth.principal import Principal
from ..dicom.dataset import JsonDataset, first, from_pydicom, to_pydicom, vr_of
from ..dicom.uids import FILTERED_GLOBAL_SUBSCRIPTION
from ..dicom.validation import InvalidDataset, JsonLimits, validate
from ..ups import tags as t
from ..ups.errors import Outcome, UPSError
from ..ups.requests import TxnCandidate, TxnSource, UPSRequest
from ..ups.service import UPSService
from .replies import call, of_error, processing_failure, status

if TYPE_CHECKING:
    from .server import DimseServer

Reply = tuple[Dataset, Dataset | None]

# N-ACTION Action Type IDs (PS3.4 CC.2.1.1 - CC.2.3.1, UPS-SOP-04)
CHANGE_STATE, REQUEST_CANCEL, SUBSCRIBE, UNSUBSCRIBE, SUSPEND_GLOBAL = 1, 2, 3, 4, 5
# N-ACTION 3 action information that is not a filter key
_SUBSCRIBE_CONTROL = (t.RECEIVING_AE, t.DELETION_LOCK, t.SPECIFIC_CHARACTER_SET)


def _requester(event: Event) -> str:
    return event.assoc.requestor.ae_title.strip()


def ups_request(event: Event, uid: str | None, dataset: JsonDataset, principal: Principal) -> UPSRequest:
    """The UPS request of a DIMSE message: the Transaction UID travels in the dataset only; the
    principal is the association's (its JWT identity, else its AE's ``--ae-roles``)."""
    txn = first(dataset, t.TRANSACTION_UID)
    return UPSRequest(uid, dataset, (TxnCandidate(txn, TxnSource.DATASET),) if txn else (), _requester(event),
                      principal)


def _without_txn(ds: JsonDataset) -> JsonDataset:
    return {k: v for k, v in ds.items() if k != t.TRANSACTION_UID}


class UPSHandlers:
    """The N-* handlers of one DimseServer."""

    def __init__(self, dimse: DimseServer):
        self.dimse = dimse

    @property
    def ups(self) -> UPSService:
        return self.dimse.services.ups

    def _run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return self.dimse.bridge.call(call(fn, *args, **kwargs))

    def _principal(self, event: Event) -> Principal:
        return self.dimse.identity.principal(event.assoc)

    def _guard(self, what: str, body: Callable[[], Reply]) -> Reply:
        try:
            return body()
        except UPSError as exc:
            return of_error(exc), None
        except InvalidDataset as exc:  # what UPS-RS answers 400 for
            return status(Outcome.INVALID_ATTRIBUTE_VALUE, str(exc)), None
        except RecursionError:
            return status(Outcome.INVALID_ATTRIBUTE_VALUE, "sequences nest too deeply"), None
        except Exception as exc:  # noqa: BLE001 - answered as Processing failure and logged
            return processing_failure(exc, what), None

    def _dataset(self, ds: Dataset) -> JsonDataset:
        """A request's dataset as DICOM JSON, within the size limits of the settings."""
        return validate(from_pydicom(ds), JsonLimits.of(self.dimse.settings))

    # ---- N-CREATE ------------------------------------------------------------------------

    def n_create(self, event: Event) -> Reply:
        def body() -> Reply:
            uid = event.request.AffectedSOPInstanceUID
            ds = self._dataset(event.attribute_list)
            result = self._run(self.ups.create, ups_request(event, str(uid) if uid else None, ds,
                                                            self._principal(event)))
            outcome = result.warning or Outcome.SUCCESS
            rsp, reply = status(outcome, result.detail), to_pydicom(_without_txn(result.dataset))
            if not uid:  # assigned here: the response names it (PS3.7 10.1.5.1.4)
                rsp.AffectedSOPInstanceUID = result.uid
                if outcome is Outcome.SUCCESS:  # pynetdicom moves it from the dataset into the response
                    reply.AffectedSOPInstanceUID = result.uid
            return rsp, reply

        return self._guard("N-CREATE", body)

    # ---- N-SET ---------------------------------------------------------------------------

    def n_set(self, event: Event) -> Reply:
        def body() -> Reply:
            uid = str(event.request.RequestedSOPInstanceUID)
            ds = self._dataset(event.modification_list)
            result = self._run(self.ups.update, ups_request(event, uid, ds, self._principal(event)))
            return status(result.warning or Outcome.SUCCESS, result.detail), None

        return self._guard("N-SET", body)

    # ---- N-GET ---------------------------------------------------------------------------

    def n_get(self, event: Event) -> Reply:
        """Only the requested attributes (all when none are named); never the Transaction UID
        (UPS-TXN-07)."""

        def body() -> Reply:
            uid = str(event.request.RequestedSOPInstanceUID)
            ds = _without_txn(self._run(self.ups.retrieve, uid, self._principal(event)))
            requested = event.request.AttributeIdentifierList
            if requested:
                wanted = [f"{int(tag):08X}" for tag in (requested if isinstance(requested, list) else [requested])]
                ds = {k: ds.get(k) or {"vr": vr_of(k)} for k in wanted if k != t.TRANSACTION_UID}
            return status(Outcome.SUCCESS), to_pydicom(ds)

        return self._guard("N-GET", body)

    # ---- N-ACTION ------------------------------------------------------------------------

    def n_action(self, event: Event) -> Reply:
        def body() -> Reply:
            action = event.request.ActionTypeID
            uid = str(event.request.RequestedSOPInstanceUID)
            info = self._dataset(event.action_information) if event.request.ActionInformation else {}
            if action in (CHANGE_STATE, REQUEST_CANCEL):
                operation = self.ups.change_state if action == CHANGE_STATE else self.ups.request_cancel
                result = self._run(operation, ups_request(event, uid, info, self._principal(event)))
                return status(result.warning or Outcome.SUCCESS, result.detail), None
            if action in (SUBSCRIBE, UNSUBSCRIBE, SUSPEND_GLOBAL):
                return self._subscription(action, uid, info, self._principal(event)), None
            raise UPSError(Outcome.ACTION_NOT_APPROPRIATE, f"unknown Action Type ID {action}")

        return self._guard("N-ACTION", body)

    def _subscription(self, action: int, uid: str, info: JsonDataset, principal: Principal) -> Dataset:
        """N-ACTION 3/4/5, delegated to ``services.events``."""
        events = self.dimse.services.events
        aet = first(info, t.RECEIVING_AE)
        if not aet:
            raise UPSError(Outcome.MISSING_ATTRIBUTE, "Receiving AE (0074,1234) is required")
        if action == SUBSCRIBE:
            lock = str(first(info, t.DELETION_LOCK, "FALSE")).strip().upper() == "TRUE"
            filter_query = None
            if uid == FILTERED_GLOBAL_SUBSCRIPTION:
                keys = {k: v for k, v in info.items() if k not in _SUBSCRIBE_CONTROL}
                from ..dicom.query import QueryError, query_from_identifier

                try:
                    filter_query = query_from_identifier(keys)
                except QueryError as exc:
                    raise UPSError(Outcome.INVALID_ATTRIBUTE_VALUE, str(exc)) from None
            return status(self._run(events.subscribe, uid, aet, lock, filter_query, principal=principal)
                          or Outcome.SUCCESS)
        self._run(events.unsubscribe if action == UNSUBSCRIBE else events.suspend_global, uid, aet, principal)
        return status(Outcome.SUCCESS)


def make_ups_handlers(dimse: DimseServer) -> list[tuple[Any, Callable[[Event], Reply]]]:
    h = UPSHandlers(dimse)
    return [
        (evt.EVT_N_CREATE, h.n_create),
        (evt.EVT_N_SET, h.n_set),
        (evt.EVT_N_GET, h.n_get),
        (evt.EVT_N_ACTION, h.n_action),
    ]
