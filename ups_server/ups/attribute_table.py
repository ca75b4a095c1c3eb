"""PS3.4 Table CC.2.5-3 (UPS attributes), one row per top-level attribute the server treats
specially: its N-CREATE and N-SET requirement, its final-state requirement, its return key type
and the indexed column it is matched on. Every list the code walks derives from these rows
(``attributes.py``: create / set / final-state checks; ``search.py``: return keys and matching
columns; ``columns.py``: the index copy).

Codes, as the table writes them: ``create`` "1" (present with a value), "2" (present, may be
empty: stored empty when left out), "2-empty" (Type 2 that shall be empty at N-CREATE), "empty"
(shall not have a value), "" (optional). ``set`` "-" (not allowed), "3/1" (optional, but not
empty when sent), "" (allowed). ``final`` "R" (required for COMPLETED and CANCELED). ``returned``
"1", "2" (in every Search result), "1C", "2C" (when present), "". ``column``/``match``: the
``workitems`` column a key matches on and how (text, dt, da, pn, text+json).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import tags as t


@dataclass(frozen=True)
class Row:
    tag: str
    create: str = ""
    set: str = ""
    final: str = ""
    returned: str = ""
    column: str | None = None
    match: str = "text"


ROWS: tuple[Row, ...] = (
    # SOP Common
    Row(t.SPECIFIC_CHARACTER_SET, returned="1C"),
    Row(t.SOP_CLASS_UID, set="-", final="R", returned="1"),
    Row(t.SOP_INSTANCE_UID, set="-", final="R", returned="1", column="uid"),
    # Unified Procedure Step Scheduled Procedure Information
    Row(t.SCHEDULED_PROCEDURE_STEP_PRIORITY, create="1", set="3/1", final="R", returned="1", column="priority"),
    Row(t.SCHEDULED_PROCEDURE_STEP_MODIFICATION_DATETIME, set="-", final="R", column="modification_dt",
        match="dt"),
    Row(t.PROCEDURE_STEP_LABEL, create="1", set="3/1", returned="1", column="procedure_step_label"),
    Row(t.WORKLIST_LABEL, set="3/1", returned="1", column="worklist_label"),
    Row(t.SCHEDULED_PROCESSING_PARAMETERS_SEQUENCE, create="2", returned="2"),
    Row(t.SCHEDULED_STATION_NAME_CODE_SEQUENCE, create="2", returned="2"),
    Row(t.SCHEDULED_STATION_CLASS_CODE_SEQUENCE, create="2", returned="2"),
    Row(t.SCHEDULED_STATION_GEOGRAPHIC_LOCATION_CODE_SEQUENCE, create="2", returned="2"),
    Row(t.SCHEDULED_HUMAN_PERFORMERS_SEQUENCE, create="2", returned="2"),
    Row(t.SCHEDULED_PROCEDURE_STEP_START_DATETIME, create="1", set="3/1", final="R", returned="1",
        column="start_dt", match="dt"),
    Row(t.EXPECTED_COMPLETION_DATETIME, set="3/1", column="expected_completion_dt", match="dt"),
    Row(t.SCHEDULED_PROCEDURE_STEP_EXPIRATION_DATETIME, column="expiration_dt", match="dt"),
    Row(t.SCHEDULED_WORKITEM_CODE_SEQUENCE, create="2", returned="2"),
    Row(t.COMMENTS_ON_SCHEDULED_PROCEDURE_STEP, create="2"),
    Row(t.INPUT_READINESS_STATE, create="1", set="3/1", final="R", returned="1", column="input_readiness"),
    Row(t.INPUT_INFORMATION_SEQUENCE, create="2", returned="2"),
    Row(t.STUDY_INSTANCE_UID, create="2", returned="2", column="study_uid", match="text+json"),
    # Unified Procedure Step Relationship
    Row(t.PATIENT_NAME, create="2", set="-", returned="2", column="patient_name", match="pn"),
    Row(t.PATIENT_ID, create="2", set="-", returned="1", column="patient_id"),
    Row(t.ISSUER_OF_PATIENT_ID, create="2", set="-", returned="2", column="issuer_of_patient_id"),
    Row(t.ISSUER_OF_PATIENT_ID_QUALIFIERS_SEQUENCE, create="2", set="-", returned="2"),
    Row(t.OTHER_PATIENT_IDS_SEQUENCE, create="2", returned="2"),
    Row(t.PATIENT_BIRTH_DATE, create="2", set="-", returned="2", column="patient_birth_date", match="da"),
    Row(t.PATIENT_SEX, create="2", set="-", returned="2", column="patient_sex"),
    Row(t.ADMISSION_ID, create="2", set="-", returned="2", column="admission_id"),
    Row(t.ISSUER_OF_ADMISSION_ID_SEQUENCE, create="2", set="-", returned="2"),
    Row(t.ADMITTING_DIAGNOSES_DESCRIPTION, create="2", set="-", returned="2"),
    Row(t.ADMITTING_DIAGNOSES_CODE_SEQUENCE, create="2", set="-", returned="2"),
    Row(t.REFERENCED_REQUEST_SEQUENCE, create="2", set="-", returned="2"),
    Row(t.REPLACED_PROCEDURE_STEP_SEQUENCE, set="-"),
    # Patient Medical (Type 2C return keys)
    Row(t.MEDICAL_ALERTS, returned="2C"),
    Row(t.PREGNANCY_STATUS, returned="2C"),
    Row(t.SPECIAL_NEEDS, returned="2C"),
    # Unified Procedure Step Progress Information
    Row(t.PROCEDURE_STEP_STATE, create="1", set="-", final="R", returned="1", column="state"),
    Row(t.PROCEDURE_STEP_PROGRESS_INFORMATION_SEQUENCE, create="2-empty", returned="2"),
    Row(t.TRANSACTION_UID, create="empty"),
    # Unified Procedure Step Performed Procedure Information
    Row(t.UPS_PERFORMED_PROCEDURE_SEQUENCE, create="2-empty"),
)


def _tags(keep) -> tuple[str, ...]:
    return tuple(row.tag for row in ROWS if keep(row))


CREATE_TYPE_1 = _tags(lambda r: r.create == "1")
CREATE_TYPE_2 = _tags(lambda r: r.create in ("2", "2-empty"))  # stored empty when left out
CREATE_MUST_BE_EMPTY = _tags(lambda r: r.create in ("2-empty", "empty"))
SET_NOT_ALLOWED = _tags(lambda r: r.set == "-")
SET_TYPE_1 = _tags(lambda r: r.set == "3/1")
FINAL_R = _tags(lambda r: r.final == "R")
RETURN_KEYS = _tags(lambda r: r.returned in ("1", "2"))  # in every Search result (UPS-QS-04)
CONDITIONAL_RETURN_KEYS = _tags(lambda r: r.returned in ("1C", "2C"))  # when present
MATCH_COLUMNS: dict[str, tuple[str, str]] = {r.tag: (r.column, r.match) for r in ROWS if r.column}
