"""``UPSRequest``: what a protocol adapter parsed from the wire, handed to ``UPSService``.

The adapters (``web/``, ``dimse/``) only parse; the service decides everything (which
Transaction UID counts, which attributes are required, what the requester may do).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from ..dicom.dataset import JsonDataset, element
from . import tags as t


class TxnSource(Enum):
    """Where a Transaction UID candidate came from (named in the answer when two disagree)."""

    QUERY = "the query parameter"  # ?transaction-uid=, ?transaction=, a bare ?{uid} key
    DATASET = "Transaction UID (0008,1195) in the dataset"
    CALLER = "the caller"  # an in-process caller (tests, tools) naming it directly


@dataclass(frozen=True)
class TxnCandidate:
    uid: str
    source: TxnSource


@dataclass(frozen=True)
class UPSRequest:
    """One request to a workitem (create, update, change state, cancel, claim-next).

    ``workitem_uid``: the addressed workitem (None on create without one, and on claim-next);
    ``dataset``: the request's dataset (N-CREATE / N-SET attributes, N-ACTION information);
    ``transaction_uids``: every Transaction UID the request carried, with where it came from;
    ``requester``: who asks (HTTP requester segment/parameter, DIMSE calling AE title);
    ``principal``: the authenticated identity (None until authentication fills it).
    """

    workitem_uid: str | None = None
    dataset: JsonDataset = field(default_factory=dict)
    transaction_uids: tuple[TxnCandidate, ...] = ()
    requester: str | None = None
    principal: Any | None = None

    @classmethod
    def direct(cls, uid: str | None, dataset: JsonDataset | None = None, *, txn: str | None = None,
               requester: str | None = None) -> UPSRequest:
        """A request from an in-process caller that names the Transaction UID itself."""
        return cls(uid, dataset or {}, (TxnCandidate(txn, TxnSource.CALLER),) if txn else (), requester)

    @classmethod
    def state_change(cls, uid: str, state: str, txn: str | None = None,
                     requester: str | None = None) -> UPSRequest:
        """Change State to ``state`` (the Procedure Step State the N-ACTION / PUT carries)."""
        return cls.direct(uid, {t.PROCEDURE_STEP_STATE: element("CS", state)}, txn=txn, requester=requester)
