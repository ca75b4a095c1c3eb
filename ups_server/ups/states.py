"""The UPS state machine of PS3.4 Table CC.1.1-2, as tables.

``CHANGE_STATE[(requested, current, txn)]`` gives an ``Action`` to perform or an ``Outcome``
to answer; ``REQUEST_CANCEL[current]`` and ``UPDATE[(current, txn)]`` likewise. A workitem
that does not exist is C307 before any table is read.
"""

from __future__ import annotations

from enum import Enum

from .attributes import CANCELED, COMPLETED, IN_PROGRESS, SCHEDULED, STATES
from .errors import Outcome


class Txn(Enum):
    """How the Transaction UID of a request compares with the workitem's."""

    MISSING = "missing"
    CORRECT = "correct"  # for a SCHEDULED workitem: any UID given (it has none yet)
    INCORRECT = "incorrect"


class Action(Enum):
    CLAIM = "claim"  # -> IN PROGRESS, record the Transaction UID
    COMPLETE = "complete"  # final-state check, -> COMPLETED
    CANCEL = "cancel"  # final-state check, -> CANCELED
    CANCEL_NOW = "cancel-now"  # SCP cancels a SCHEDULED workitem itself (IN PROGRESS, CANCELED)
    RECORD_CANCEL_REQUEST = "record-cancel-request"  # tell the performer (UPS Cancel Requested)
    UPDATE = "update"


def compare_txn(given: str | None, current_state: str, stored: str | None) -> Txn:
    if not given:
        return Txn.MISSING
    if current_state == SCHEDULED:
        return Txn.CORRECT
    return Txn.CORRECT if given == stored else Txn.INCORRECT


_O = Outcome
_MISSING = {Txn.MISSING: _O.TRANSACTION_UID_MISSING, Txn.INCORRECT: _O.TRANSACTION_UID_INCORRECT}

# Table CC.1.1-2, rows "Change State" (UPS-STATE-03..13).
CHANGE_STATE: dict[tuple[str, str, Txn], Action | Outcome] = {
    (IN_PROGRESS, SCHEDULED, Txn.CORRECT): Action.CLAIM,
    (IN_PROGRESS, IN_PROGRESS, Txn.CORRECT): _O.ALREADY_IN_PROGRESS,
    (IN_PROGRESS, COMPLETED, Txn.CORRECT): _O.MAY_NO_LONGER_BE_UPDATED,
    (IN_PROGRESS, CANCELED, Txn.CORRECT): _O.MAY_NO_LONGER_BE_UPDATED,
    (COMPLETED, SCHEDULED, Txn.CORRECT): _O.NOT_IN_PROGRESS,
    (COMPLETED, IN_PROGRESS, Txn.CORRECT): Action.COMPLETE,
    (COMPLETED, COMPLETED, Txn.CORRECT): _O.ALREADY_COMPLETED,
    (COMPLETED, CANCELED, Txn.CORRECT): _O.MAY_NO_LONGER_BE_UPDATED,
    (CANCELED, SCHEDULED, Txn.CORRECT): _O.NOT_IN_PROGRESS,
    (CANCELED, IN_PROGRESS, Txn.CORRECT): Action.CANCEL,
    (CANCELED, COMPLETED, Txn.CORRECT): _O.MAY_NO_LONGER_BE_UPDATED,
    (CANCELED, CANCELED, Txn.CORRECT): _O.ALREADY_CANCELED,
}
# Rows "no/incorrect Transaction UID": C301 in every state (the UID check comes first).
for _requested in (IN_PROGRESS, COMPLETED, CANCELED):
    for _state in STATES:
        for _txn, _outcome in _MISSING.items():
            CHANGE_STATE[(_requested, _state, _txn)] = _outcome
# Row "-> SCHEDULED": only N-CREATE makes a workitem SCHEDULED (UPS-STATE-07).
for _state in STATES:
    for _txn in Txn:
        CHANGE_STATE[(SCHEDULED, _state, _txn)] = _O.ONLY_SCHEDULED_VIA_CREATE

# Row "Request Cancel" (UPS-STATE-15, UPS-CANCEL-02..06).
REQUEST_CANCEL: dict[str, Action | Outcome] = {
    SCHEDULED: Action.CANCEL_NOW,
    IN_PROGRESS: Action.RECORD_CANCEL_REQUEST,
    COMPLETED: _O.ALREADY_COMPLETED_CANNOT_CANCEL,
    CANCELED: _O.ALREADY_CANCELED,
}

# N-SET (PS3.4 CC.2.6.3; UPS-SET-01..03, UPS-TXN-04/05).
UPDATE: dict[tuple[str, Txn], Action | Outcome] = {
    (SCHEDULED, Txn.MISSING): Action.UPDATE,
    (SCHEDULED, Txn.CORRECT): _O.NOT_IN_PROGRESS,  # "shall not" send one; refused as dcm4chee
    (IN_PROGRESS, Txn.CORRECT): Action.UPDATE,
    (IN_PROGRESS, Txn.MISSING): _O.TRANSACTION_UID_MISSING,
    (IN_PROGRESS, Txn.INCORRECT): _O.TRANSACTION_UID_INCORRECT,
}
for _state in (COMPLETED, CANCELED):
    for _txn in Txn:
        UPDATE[(_state, _txn)] = _O.MAY_NO_LONGER_BE_UPDATED

REQUESTABLE_STATES = (IN_PROGRESS, COMPLETED, CANCELED, SCHEDULED)
