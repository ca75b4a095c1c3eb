"""Rule conditions as SQL over the instance index, where the SQL means exactly what
``conditions.holds`` means; ``None`` where it cannot (the caller evaluates those in Python).

Compiled: equals / matches / present / absent (and their negations) on the indexed instance
columns (SOP Class, SOP Instance, Series and Study Instance UID, the sending and receiving AE
and host) and on top-level string attributes of the instance's DICOM JSON; a ``matches``
pattern only when it keeps to the part of regular-expression syntax Python and PostgreSQL
read alike. Not compiled: codes, sequence paths, person names, numbers.
"""

from __future__ import annotations

import re

from sqlalchemy import ColumnElement, and_, exists, false, func, literal, not_, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import Text

from ..db.tables import instances
from ..dicom import tags as t
from ..dicom.dataset import vr_of
from .model import RECEIVING_AE, SENDING_AE, SENDING_HOST, Condition

_COLUMNS = {
    t.SOP_CLASS_UID: instances.c.sop_class_uid, t.SOP_INSTANCE_UID: instances.c.sop_instance_uid,
    t.SERIES_INSTANCE_UID: instances.c.series_uid, t.STUDY_INSTANCE_UID: instances.c.study_uid,
    SENDING_AE: instances.c.source_ae, SENDING_HOST: instances.c.source_host, RECEIVING_AE: instances.c.receiving_ae,
}
_STRING_VRS = {"AE", "AS", "CS", "DA", "DT", "LO", "LT", "SH", "ST", "TM", "UC", "UI", "UR", "UT"}

# Escapes, non-capturing groups, bracket expressions without negation or escapes, and every
# other character but anchors: within this, Python's re.fullmatch and PostgreSQL's ARE agree.
_PORTABLE = re.compile(r"(?:\\[.\\^$*+?()\[\]{}|/dDsSwW-]|\(\?:|\[(?!\^)[^\]\\\[]+\]|[^\\\[\]$^(]|\((?!\?))*")


def portable_regex(pattern: re.Pattern[str]) -> str | None:
    """The PostgreSQL form of a full match of ``pattern``, or None."""
    if pattern.flags & ~re.UNICODE or not _PORTABLE.fullmatch(pattern.pattern):
        return None
    # (?p): '.' does not match a newline, as in Python; anchors still mean the whole string
    return f"(?p)^(?:{pattern.pattern})$"


def _values_test(cond: Condition) -> ColumnElement[bool] | None:
    """``holds`` without the negation, never NULL."""
    column = _COLUMNS.get(cond.subject if cond.path is None else _single_tag(cond) or "")
    if column is not None:
        present = column != ""
        if cond.op == "equals":
            test = column.in_([v for v in cond.values if v])
        elif cond.op == "matches":
            regex = portable_regex(cond.pattern) if cond.pattern is not None else None
            if regex is None:
                return None
            test = and_(present, column.regexp_match(regex))
        elif cond.op in ("present", "absent"):
            test = present
        else:
            return None
        test = func.coalesce(test, false())
        return not_(test) if cond.op == "absent" else test
    tag = _single_tag(cond)
    if tag is None or vr_of(tag) not in _STRING_VRS:
        return None
    value_array = instances.c.metadata[tag]["Value"]
    if cond.op == "equals":
        wanted = [v for v in cond.values if v]
        return func.coalesce(value_array.has_any(literal(wanted, ARRAY(Text))), false())
    elements = func.jsonb_array_elements_text(value_array).table_valued("value")
    nonempty = elements.c.value != ""
    if cond.op in ("present", "absent"):
        test = exists(select(literal(1)).select_from(elements).where(nonempty))
        return not_(test) if cond.op == "absent" else test
    if cond.op == "matches" and cond.pattern is not None:
        regex = portable_regex(cond.pattern)
        if regex is None:
            return None
        return exists(select(literal(1)).select_from(elements).where(nonempty, elements.c.value.regexp_match(regex)))
    return None


def _single_tag(cond: Condition) -> str | None:
    """The tag of a top-level attribute path (``Modality``), else None."""
    if cond.path is None or len(cond.path) != 1 or cond.path[0][1] is not None:
        return None
    return cond.path[0][0]


def compile_condition(cond: Condition) -> ColumnElement[bool] | None:
    test = _values_test(cond)
    if test is None:
        return None
    return not_(test) if cond.negate else test


def compile_all(conds: list[Condition]) -> ColumnElement[bool] | None:
    """All of ``conds`` as one SQL condition over ``instances``, or None if any cannot be."""
    compiled = [compile_condition(c) for c in conds]
    if any(c is None for c in compiled):
        return None
    return and_(literal(True), *compiled)
