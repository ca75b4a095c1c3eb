"""The one table of UPS outcomes: DIMSE status, and the HTTP status + Warning PS3.18 maps it to.

Every domain result is an ``Outcome``. Failures are raised as ``UPSError(outcome, detail)``;
warnings travel back with successful results. Adapters look statuses up here and never type
a status code themselves (checklist §2.1 and §2.2). A policy plugged into the UPS core (a claim
guard in ``rules/``) refuses with a ``PolicyOutcome`` that carries its own row.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Transaction(Enum):
    """The UPS-RS / DIMSE operation an outcome is answered for (the HTTP mapping depends on it)."""

    CREATE = "create"
    RETRIEVE = "retrieve"
    UPDATE = "update"
    CHANGE_STATE = "change-state"
    CANCEL = "cancel"
    SEARCH = "search"
    SUBSCRIBE = "subscribe"
    UNSUBSCRIBE = "unsubscribe"
    SUSPEND = "suspend"
    STORE = "store"


class Outcome(Enum):
    """(DIMSE status, meaning). Names follow PS3.4 Annex CC status tables."""

    SUCCESS = (0x0000, "Success")
    OPTIONAL_ATTRIBUTES_NOT_SUPPORTED = (0x0001, "Requested optional Attributes are not supported.")
    CREATED_WITH_MODIFICATIONS = (0xB300, "The UPS was created with modifications.")
    DELETION_LOCK_NOT_GRANTED = (0xB301, "Deletion Lock not granted.")
    ALREADY_CANCELED = (0xB304, "The UPS is already in the requested state of CANCELED.")
    UPDATED_WITH_MODIFICATIONS = (0xB305, "Coerced invalid values to valid values.")
    ALREADY_COMPLETED = (0xB306, "The UPS is already in the requested state of COMPLETED.")
    MAY_NO_LONGER_BE_UPDATED = (0xC300, "The UPS may no longer be updated.")
    TRANSACTION_UID_MISSING = (0xC301, "The Transaction UID is missing.")
    TRANSACTION_UID_INCORRECT = (0xC301, "The Transaction UID is incorrect.")
    ALREADY_IN_PROGRESS = (0xC302, "The UPS is already IN PROGRESS.")
    ONLY_SCHEDULED_VIA_CREATE = (0xC303, "The UPS may only become SCHEDULED via N-CREATE, not N-SET or N-ACTION.")
    FINAL_STATE_NOT_MET = (
        0xC304, "The UPS has not met final state requirements for the requested state change.")
    NO_SUCH_UPS = (0xC307, "Specified SOP Instance UID does not exist or is not a UPS Instance managed by this SCP.")
    UNKNOWN_RECEIVING_AE = (0xC308, "Receiving AE-TITLE is Unknown to this SCP.")
    NOT_SCHEDULED_AT_CREATE = (0xC309, "The provided value of UPS State was not SCHEDULED.")
    NOT_IN_PROGRESS = (0xC310, "The UPS is not yet in the IN PROGRESS state.")
    ALREADY_COMPLETED_CANNOT_CANCEL = (0xC311, "The UPS is already COMPLETED.")
    PERFORMER_CANNOT_BE_CONTACTED = (0xC312, "The performer cannot be contacted.")
    PERFORMER_REFUSES_CANCEL = (0xC313, "Performer chooses not to cancel.")
    ACTION_NOT_APPROPRIATE = (0xC314, "Specified action not appropriate for specified instance.")
    EVENTS_NOT_SUPPORTED = (0xC315, "SCP does not support Event Reports.")
    NO_SUCH_ATTRIBUTE = (0x0105, "No such attribute.")
    INVALID_ATTRIBUTE_VALUE = (0x0106, "Invalid attribute value.")
    DUPLICATE_SOP_INSTANCE = (0x0111, "Duplicate SOP Instance.")
    MISSING_ATTRIBUTE = (0x0120, "Missing attribute.")
    MISSING_ATTRIBUTE_VALUE = (0x0121, "Missing attribute value.")
    NOT_AUTHORIZED = (0x0124, "Refused: not authorized.")
    # Unsubscribe / Suspend of a subscription the AE does not have. PS3.18 11.11/11.12 answer 404;
    # PS3.4 names no status for it, so N-ACTION 4/5 refuse with C314 (action not appropriate).
    NOT_SUBSCRIBED = (0xC314, "The Receiving AE has no such subscription.")
    PROCESSING_FAILURE = (0x0110, "Processing failure.")

    @property
    def status(self) -> int:
        return self.value[0]

    @property
    def meaning(self) -> str:
        return self.value[1]

    @property
    def is_warning(self) -> bool:
        return self.status == 0x0001 or (self.status & 0xF000) == 0xB000

    @property
    def is_failure(self) -> bool:
        return self is not Outcome.SUCCESS and not self.is_warning


@dataclass(frozen=True)
class PolicyOutcome:
    """A refusal by a policy plugged into the UPS core (a claim guard from ``rules/``): not a
    PS3.4 outcome, so it names its DIMSE status and its HTTP status + Warning itself."""

    name: str
    status: int
    meaning: str
    http: tuple[int, str | None]

    is_warning = False
    is_failure = True


class UPSError(Exception):
    """A refused request: the outcome, and a sentence a person can act on."""

    def __init__(self, outcome: Outcome | PolicyOutcome, detail: str | None = None):
        super().__init__(detail or outcome.meaning)
        self.outcome = outcome
        self.detail = detail or outcome.meaning


_STATE_CONFLICT = "The submitted request is inconsistent with the state of the UPS Instance."
_UPDATE_CONFLICT = "The submitted request is inconsistent with the current state of the Workitem."
_NOT_CLAIMED = "The target URI did not reference a claimed Workitem."
_T = Transaction
_O = Outcome

# (outcome, transaction) -> (HTTP status, Warning text or None); checklist §2.2, PS3.18 2024e.
# Where PS3.18 allows 400 or 409 for a state conflict (AMB-01) we answer 409, as dcm4chee does.
# Each transaction's Warning texts come from its own list in PS3.18: Update (11.6.3.2) has only
# _NOT_CLAIMED and _UPDATE_CONFLICT for failures, Change State (11.7.3.2) the Transaction UID texts
# and _STATE_CONFLICT; a transaction-specific row below wins over the row for any transaction.
_HTTP: dict[tuple[Outcome, Transaction | None], tuple[int, str | None]] = {
    (_O.SUCCESS, _T.CREATE): (201, None),
    (_O.SUCCESS, _T.CANCEL): (202, None),
    (_O.SUCCESS, _T.SUBSCRIBE): (201, None),
    (_O.SUCCESS, None): (200, None),
    (_O.CREATED_WITH_MODIFICATIONS, None): (201, "The Workitem was created with modifications."),
    (_O.UPDATED_WITH_MODIFICATIONS, None): (200, "The Workitem was updated with modifications."),
    (_O.OPTIONAL_ATTRIBUTES_NOT_SUPPORTED, None): (200, "Requested optional Attributes are not supported."),
    (_O.DELETION_LOCK_NOT_GRANTED, None): (201, "Deletion Lock not granted."),
    (_O.ALREADY_CANCELED, _T.CANCEL): (202, "The UPS is already in the requested state of CANCELED."),
    (_O.ALREADY_CANCELED, None): (200, "The UPS is already in the requested state of CANCELED."),
    (_O.ALREADY_COMPLETED, None): (200, "The UPS is already in the requested state of COMPLETED."),
    (_O.DUPLICATE_SOP_INSTANCE, None): (409, "The Target Workitem already exists."),
    (_O.TRANSACTION_UID_MISSING, _T.UPDATE): (400, _NOT_CLAIMED),
    (_O.TRANSACTION_UID_INCORRECT, _T.UPDATE): (400, _NOT_CLAIMED),
    (_O.TRANSACTION_UID_MISSING, None): (400, "The Transaction UID is missing."),
    (_O.TRANSACTION_UID_INCORRECT, None): (400, "The Transaction UID is incorrect."),
    (_O.MAY_NO_LONGER_BE_UPDATED, _T.UPDATE): (400, _UPDATE_CONFLICT),  # PS3.18 11.6.2: MUST be 400
    (_O.MAY_NO_LONGER_BE_UPDATED, None): (409, _STATE_CONFLICT),
    (_O.NOT_IN_PROGRESS, _T.UPDATE): (409, _NOT_CLAIMED),
    (_O.NOT_IN_PROGRESS, None): (409, _STATE_CONFLICT),
    (_O.ALREADY_IN_PROGRESS, None): (409, _STATE_CONFLICT),
    (_O.FINAL_STATE_NOT_MET, None): (409, _STATE_CONFLICT),
    (_O.ONLY_SCHEDULED_VIA_CREATE, None): (400, _STATE_CONFLICT),
    (_O.ALREADY_COMPLETED_CANNOT_CANCEL, None): (409, _STATE_CONFLICT),
    (_O.PERFORMER_CANNOT_BE_CONTACTED, None): (409, "The performer cannot be contacted."),
    (_O.PERFORMER_REFUSES_CANCEL, None): (409, "Performer chooses not to cancel."),
    (_O.NO_SUCH_UPS, None): (404, "The Target Workitem was not found."),
    (_O.NOT_SCHEDULED_AT_CREATE, None): (400, "The provided value of UPS State was not SCHEDULED."),
    (_O.UNKNOWN_RECEIVING_AE, None): (404, "Receiving AE-TITLE is Unknown to this SCP."),
    # PS3.18 11.12: suspend applies to the global subscription resources only: 400
    (_O.ACTION_NOT_APPROPRIATE, _T.SUSPEND): (400, "Specified action not appropriate for specified instance."),
    (_O.ACTION_NOT_APPROPRIATE, None): (409, "Specified action not appropriate for specified instance."),
    (_O.NOT_SUBSCRIBED, None): (404, "Subscription not found."),
    (_O.EVENTS_NOT_SUPPORTED, None): (403, "SCP does not support Event Reports."),
    (_O.NO_SUCH_ATTRIBUTE, None): (400, None),
    (_O.INVALID_ATTRIBUTE_VALUE, None): (400, None),
    (_O.MISSING_ATTRIBUTE, None): (400, None),
    (_O.MISSING_ATTRIBUTE_VALUE, None): (400, None),
    (_O.NOT_AUTHORIZED, None): (403, None),
    (_O.PROCESSING_FAILURE, None): (500, None),
}


def http_status(outcome: Outcome | PolicyOutcome, transaction: Transaction) -> tuple[int, str | None]:
    """The HTTP status and Warning text for ``outcome`` answered to ``transaction``."""
    if isinstance(outcome, PolicyOutcome):
        return outcome.http
    found = _HTTP.get((outcome, transaction)) or _HTTP.get((outcome, None))
    if found is None:
        raise KeyError(f"no HTTP mapping for {outcome.name}")
    return found
