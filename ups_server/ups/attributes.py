"""Attribute requirements of PS3.4 Table CC.2.5-3 as data: N-CREATE, N-SET and Final State.

``validate_create`` / ``validate_set`` / ``final_state_problems`` walk the lists derived from
the attribute table (``attribute_table.py``) and the item-level tables below; the tables, not
``if`` chains, say what the standard requires (checklist §4-§7).
"""

from __future__ import annotations

from ..dicom.dataset import JsonDataset, element, has_value, items, values, vr_of
from ..dicom.datetime import parse_dt
from ..dicom.validation import UNLIMITED, validate
from . import tags as t
from .attribute_table import (
    CREATE_MUST_BE_EMPTY,
    CREATE_TYPE_1,
    CREATE_TYPE_2,
    FINAL_R,
    SET_NOT_ALLOWED,
    SET_TYPE_1,
)
from .errors import Outcome, UPSError

SCHEDULED, IN_PROGRESS, COMPLETED, CANCELED = "SCHEDULED", "IN PROGRESS", "COMPLETED", "CANCELED"
STATES = (SCHEDULED, IN_PROGRESS, COMPLETED, CANCELED)
FINAL_STATES = (COMPLETED, CANCELED)

ENUMERATIONS: dict[str, tuple[str, ...]] = {
    t.SCHEDULED_PROCEDURE_STEP_PRIORITY: ("HIGH", "MEDIUM", "LOW"),
    t.INPUT_READINESS_STATE: ("INCOMPLETE", "UNAVAILABLE", "READY"),
}
DATETIMES = (
    t.SCHEDULED_PROCEDURE_STEP_START_DATETIME,
    t.EXPECTED_COMPLETION_DATETIME,
    t.SCHEDULED_PROCEDURE_STEP_EXPIRATION_DATETIME,
)

# Items of sequences: the keys each item must carry with a value (1/1).
ITEM_TYPE_1 = {
    t.SCHEDULED_HUMAN_PERFORMERS_SEQUENCE: (t.HUMAN_PERFORMER_CODE_SEQUENCE,),
    t.REFERENCED_REQUEST_SEQUENCE: (t.STUDY_INSTANCE_UID,),
    t.OTHER_PATIENT_IDS_SEQUENCE: (t.PATIENT_ID,),
}
ITEM_TYPE_2 = {
    t.REFERENCED_REQUEST_SEQUENCE: (
        t.ACCESSION_NUMBER,
        t.ISSUER_OF_ACCESSION_NUMBER_SEQUENCE,
        t.REQUESTED_PROCEDURE_ID,
        t.REQUESTED_PROCEDURE_DESCRIPTION,
        t.REQUESTED_PROCEDURE_CODE_SEQUENCE,
    ),
}

# Final State requirements (Table CC.2.5-1; UPS-FINAL-01/02) of sequence items: P for COMPLETED
# only, X for CANCELED only (R, for both, is a column of the attribute table). Paths are
# (sequence, key in its first item).
FINAL_P = (
    (t.UPS_PERFORMED_PROCEDURE_SEQUENCE, t.PERFORMED_STATION_NAME_CODE_SEQUENCE),
    (t.UPS_PERFORMED_PROCEDURE_SEQUENCE, t.PERFORMED_PROCEDURE_STEP_START_DATETIME),
    (t.UPS_PERFORMED_PROCEDURE_SEQUENCE, t.PERFORMED_WORKITEM_CODE_SEQUENCE),
    (t.UPS_PERFORMED_PROCEDURE_SEQUENCE, t.PERFORMED_PROCEDURE_STEP_END_DATETIME),
)
# Output Information Sequence is P but "may have no items" (UPS-FINAL-06): present suffices.
FINAL_P_PRESENT = ((t.UPS_PERFORMED_PROCEDURE_SEQUENCE, t.OUTPUT_INFORMATION_SEQUENCE),)
FINAL_X = (
    (t.PROCEDURE_STEP_PROGRESS_INFORMATION_SEQUENCE, t.PROCEDURE_STEP_CANCELLATION_DATETIME),
    (t.PROCEDURE_STEP_PROGRESS_INFORMATION_SEQUENCE, t.PROCEDURE_STEP_DISCONTINUATION_REASON_CODE_SEQUENCE),
)

# Default discontinuation reason the SCP records when it cancels on its own (as dcm4chee).
DEFAULT_DISCONTINUATION_REASON = {
    t.CODE_VALUE: element("SH", "110513"),
    t.CODING_SCHEME_DESIGNATOR: element("SH", "DCM"),
    t.CODE_MEANING: element("LO", "Discontinued for unspecified reason"),
}


def name(tag: str) -> str:
    """``'00741000'`` -> ``'ProcedureStepState (0074,1000)'`` for messages."""
    from pydicom.datadict import keyword_for_tag

    keyword = keyword_for_tag(int(tag, 16)) or "attribute"
    return f"{keyword} ({tag[:4]},{tag[4:]})"


def _fail(outcome: Outcome, tag: str, problem: str) -> UPSError:
    return UPSError(outcome, f"{name(tag)} {problem}")


# The performer codes (Scheduled Human Performers Sequence > Human Performer Code Sequence > Code Value)
# are stored whole in the worklist index (migration 0014) for searches by state + Worklist Label +
# performer: an index entry has a size limit, so a workitem names at most this many distinct codes of
# at most this many UTF-8 bytes in all.
PERFORMER_CODES_MAX, PERFORMER_CODE_BYTES_MAX = 64, 1024


def _check_performer_codes(ds: JsonDataset) -> None:
    codes = {v for performer in items(ds, t.SCHEDULED_HUMAN_PERFORMERS_SEQUENCE)
             for code in items(performer, t.HUMAN_PERFORMER_CODE_SEQUENCE)
             for v in values(code, t.CODE_VALUE) if isinstance(v, str)}
    size = sum(len(c.encode()) for c in codes)
    if len(codes) > PERFORMER_CODES_MAX or size > PERFORMER_CODE_BYTES_MAX:
        raise _fail(Outcome.INVALID_ATTRIBUTE_VALUE, t.SCHEDULED_HUMAN_PERFORMERS_SEQUENCE,
                    f"names {len(codes)} performer codes of {size} bytes in all; this server indexes at most "
                    f"{PERFORMER_CODES_MAX} codes of {PERFORMER_CODE_BYTES_MAX} bytes (UTF-8) in all")


def _check_values(ds: JsonDataset, for_set: bool) -> None:
    """Enumerations and datetime syntax of the values present; the performer codes' size."""
    _check_performer_codes(ds)
    for tag, allowed in ENUMERATIONS.items():
        if tag in ds and has_value(ds, tag):
            value = ds[tag]["Value"][0]
            if value not in allowed:
                raise _fail(Outcome.INVALID_ATTRIBUTE_VALUE, tag,
                            f"is {value!r}; allowed values are {', '.join(allowed)}")
    for tag in DATETIMES:
        if tag in ds and has_value(ds, tag):
            try:
                parse_dt(str(ds[tag]["Value"][0]))
            except ValueError:
                raise _fail(Outcome.INVALID_ATTRIBUTE_VALUE, tag,
                            f"is {ds[tag]['Value'][0]!r}, not a DICOM DT (YYYYMMDDHHMMSS)") from None
    if for_set:
        return
    for seq, keys in ITEM_TYPE_1.items():
        for i, item in enumerate(items(ds, seq)):
            for key in keys:
                if not has_value(item, key):
                    raise _fail(Outcome.MISSING_ATTRIBUTE_VALUE, key, f"is required in item {i + 1} of {name(seq)}")


def validate_create(ds: JsonDataset) -> tuple[JsonDataset, list[str]]:
    """Check an N-CREATE dataset (UPS-CREATE-01..05); return it completed, with the list of
    modifications made (a non-empty list means B300, "created with modifications")."""
    ds = validate(ds, UNLIMITED)  # the adapters applied the size limits
    modifications: list[str] = []
    state = ds.get(t.PROCEDURE_STEP_STATE, {}).get("Value", [None])[0]
    if state is None:
        raise _fail(Outcome.MISSING_ATTRIBUTE, t.PROCEDURE_STEP_STATE, "is required and must be SCHEDULED")
    if state != SCHEDULED:
        raise UPSError(Outcome.NOT_SCHEDULED_AT_CREATE,
                       f"ProcedureStepState (0074,1000) is {state!r}; a new workitem must be SCHEDULED")
    if not has_value(ds, t.SCHEDULED_PROCEDURE_STEP_START_DATETIME):
        # dcm4che upsscu -O create sends none: fill it with now and say so (DESIGN.md).
        from ..dicom.datetime import format_dt

        ds[t.SCHEDULED_PROCEDURE_STEP_START_DATETIME] = element("DT", format_dt())
        modifications.append(f"{name(t.SCHEDULED_PROCEDURE_STEP_START_DATETIME)} set to the current time")
    for tag in CREATE_TYPE_1:
        if tag not in ds:
            raise _fail(Outcome.MISSING_ATTRIBUTE, tag, "is required (Type 1)")
        if not has_value(ds, tag):
            raise _fail(Outcome.MISSING_ATTRIBUTE_VALUE, tag, "must have a value (Type 1)")
    for tag in CREATE_MUST_BE_EMPTY:
        if has_value(ds, tag):
            raise _fail(Outcome.INVALID_ATTRIBUTE_VALUE, tag, "must be empty when a workitem is created")
    _check_values(ds, for_set=False)
    for tag in CREATE_TYPE_2:
        ds.setdefault(tag, element(vr_of(tag)))
    for seq, keys in ITEM_TYPE_2.items():
        for item in items(ds, seq):
            for key in keys:
                item.setdefault(key, element(vr_of(key)))
    ds.pop(t.TRANSACTION_UID, None)
    return ds, modifications


def validate_set(ds: JsonDataset) -> JsonDataset:
    """Check an N-SET dataset (UPS-SET-04/05/06); the Transaction UID is a key, not a value."""
    ds = validate(ds, UNLIMITED)  # the adapters applied the size limits
    ds.pop(t.TRANSACTION_UID, None)
    for tag in SET_NOT_ALLOWED:
        if tag in ds:
            hint = "; use Change State" if tag == t.PROCEDURE_STEP_STATE else ""
            raise _fail(Outcome.INVALID_ATTRIBUTE_VALUE, tag, f"may not be changed by an update{hint}")
    for tag in SET_TYPE_1:
        if tag in ds and not has_value(ds, tag):
            raise _fail(Outcome.MISSING_ATTRIBUTE_VALUE, tag, "may not be set empty")
    _check_values(ds, for_set=True)
    return ds


def _first_item_has(ds: JsonDataset, seq: str, key: str, present_only: bool = False) -> bool:
    first = items(ds, seq)
    if not first:
        return False
    return key in first[0] if present_only else has_value(first[0], key)


def final_state_problems(ds: JsonDataset, target: str) -> list[str]:
    """What keeps ``ds`` from moving to the final state ``target`` (empty when it may)."""
    missing = [name(tag) for tag in FINAL_R if not has_value(ds, tag)]
    if target == COMPLETED:
        missing += [f"{name(seq)} > {name(key)}" for seq, key in FINAL_P if not _first_item_has(ds, seq, key)]
        missing += [f"{name(seq)} > {name(key)}" for seq, key in FINAL_P_PRESENT
                    if not _first_item_has(ds, seq, key, present_only=True)]
    else:
        missing += [f"{name(seq)} > {name(key)}" for seq, key in FINAL_X if not _first_item_has(ds, seq, key)]
    return missing
