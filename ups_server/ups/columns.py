"""The indexed matching-key columns of a workitem row, derived from its dataset."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..db.tables import indexed_text
from ..dicom.dataset import JsonDataset, first, items
from ..dicom.datetime import parse_dt
from . import tags as t

PRIORITY_RANK = {"HIGH": 0, "MEDIUM": 1, "LOW": 2}


def _dt(ds: JsonDataset, tag: str) -> datetime | None:
    value = first(ds, tag)
    if not value:
        return None
    try:
        return parse_dt(str(value))
    except ValueError:
        return None


def index_columns(ds: JsonDataset) -> dict[str, Any]:
    """Column values for ``workitems`` (everything but uid/state/transaction/reader)."""
    request = items(ds, t.REFERENCED_REQUEST_SEQUENCE)
    request0 = request[0] if request else {}
    priority = first(ds, t.SCHEDULED_PROCEDURE_STEP_PRIORITY, "MEDIUM")
    columns = {
        "priority": priority,
        "priority_rank": PRIORITY_RANK.get(priority, 1),
        "procedure_step_label": first(ds, t.PROCEDURE_STEP_LABEL),
        "worklist_label": first(ds, t.WORKLIST_LABEL),
        "input_readiness": first(ds, t.INPUT_READINESS_STATE),
        "start_dt": _dt(ds, t.SCHEDULED_PROCEDURE_STEP_START_DATETIME),
        "expected_completion_dt": _dt(ds, t.EXPECTED_COMPLETION_DATETIME),
        "expiration_dt": _dt(ds, t.SCHEDULED_PROCEDURE_STEP_EXPIRATION_DATETIME),
        "modification_dt": _dt(ds, t.SCHEDULED_PROCEDURE_STEP_MODIFICATION_DATETIME),
        "patient_name": first(ds, t.PATIENT_NAME),
        "patient_id": first(ds, t.PATIENT_ID),
        "issuer_of_patient_id": first(ds, t.ISSUER_OF_PATIENT_ID),
        "patient_birth_date": first(ds, t.PATIENT_BIRTH_DATE),
        "patient_sex": first(ds, t.PATIENT_SEX),
        "admission_id": first(ds, t.ADMISSION_ID),
        "study_uid": first(ds, t.STUDY_INSTANCE_UID) or first(request0, t.STUDY_INSTANCE_UID),
        "accession_number": first(request0, t.ACCESSION_NUMBER),
    }
    return {"dataset": ds, **{name: indexed_text(value) for name, value in columns.items()}}
