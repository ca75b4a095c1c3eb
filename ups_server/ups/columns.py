"""The indexed matching-key columns of a workitem row, derived from its dataset: one column per
attribute-table row with a ``column`` (``attribute_table.py``), plus the derived ones."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..db.tables import indexed_text
from ..dicom.dataset import JsonDataset, first, items
from ..dicom.datetime import parse_dt
from . import tags as t
from .attribute_table import MATCH_COLUMNS

PRIORITY_RANK = {"HIGH": 0, "MEDIUM": 1, "LOW": 2}
_WRITTEN_BY_THE_SERVICE = ("uid", "state")  # the row's key and its state (the state machine writes it)
# The top-level attributes index_columns() reads: a change of none of them leaves every column as it was.
COLUMN_TAGS = frozenset(tag for tag, (name, _) in MATCH_COLUMNS.items() if name not in _WRITTEN_BY_THE_SERVICE) | {
    t.REFERENCED_REQUEST_SEQUENCE}


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
    columns: dict[str, Any] = {
        name: _dt(ds, tag) if kind == "dt" else first(ds, tag)
        for tag, (name, kind) in MATCH_COLUMNS.items() if name not in _WRITTEN_BY_THE_SERVICE
    }
    columns["priority"] = priority = columns["priority"] or "MEDIUM"
    columns["priority_rank"] = PRIORITY_RANK.get(priority, 1)
    columns["study_uid"] = columns["study_uid"] or first(request0, t.STUDY_INSTANCE_UID)
    columns["accession_number"] = first(request0, t.ACCESSION_NUMBER)
    return {"dataset": ds, **{name: indexed_text(value) for name, value in columns.items()}}
