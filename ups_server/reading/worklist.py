"""The reading page's worklist: one page of rows in priority/age order (keyset paging, so a page
costs the same at row 10 and row 1,000,000) and the counts per state, under the page's filters.

A read-only view over the indexed workitem columns; every action goes through UPS-RS.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, true, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine

from ..db.tables import studies, workitems
from ..rules.guard import reader_holds_read
from ..ups import tags as t
from ..ups.attributes import SCHEDULED, STATES

TABS = ("mine", "available", "all")
SORTS = ("priority", "age")
PRIORITIES = ("HIGH", "MEDIUM", "LOW")
MAX_LIMIT = 200
# counts per state stop here ("10000+"): an exact count of a million rows costs a scan of them,
# on every reload of every page; a capped one costs at most this many index entries per state
COUNT_CAP = 10000


class WorklistError(ValueError):
    """A filter the worklist cannot apply (answered 400)."""


@dataclass
class WorklistQuery:
    tab: str = "available"
    reader: str | None = None
    visible: ColumnElement[bool] | None = None  # what the principal may see (rules/access.py; None: all)
    worklist_label: str | None = None
    priority: str | None = None
    state: str | None = None
    text: str | None = None  # prefix of patient name / patient ID / accession number
    sort: str = "priority"
    after: str | None = None  # keyset cursor: "<priority_rank>.<seq>" or "<seq>"
    limit: int = 50

    def check(self) -> None:
        for name, value, allowed in (("tab", self.tab, TABS), ("sort", self.sort, SORTS),
                                     ("priority", self.priority, PRIORITIES), ("state", self.state, STATES)):
            if value is not None and value not in allowed:
                raise WorklistError(f"{name}={value!r} is not one of {', '.join(allowed)}")
        if not 1 <= self.limit <= MAX_LIMIT:
            raise WorklistError(f"limit must be 1 to {MAX_LIMIT}")
        if self.tab == "mine" and not self.reader:
            raise WorklistError("the Mine tab needs a reader")


def _tab(q: WorklistQuery) -> ColumnElement[bool]:
    if q.tab == "mine":
        assigned = workitems.c.dataset.contains({t.SCHEDULED_HUMAN_PERFORMERS_SEQUENCE: {"Value": [
            {t.HUMAN_PERFORMER_CODE_SEQUENCE: {"Value": [{t.CODE_VALUE: {"Value": [q.reader]}}]}}]}})
        return or_(workitems.c.claimant == q.reader, and_(workitems.c.state == SCHEDULED, assigned))
    if q.tab == "available":
        scheduled = workitems.c.state == SCHEDULED
        return and_(scheduled, ~reader_holds_read(q.reader)) if q.reader else scheduled
    return true()


def _filters(q: WorklistQuery) -> list[ColumnElement[bool]]:
    where = [_tab(q)]
    if q.visible is not None:
        where.append(q.visible)
    if q.worklist_label:
        where.append(workitems.c.worklist_label == q.worklist_label)
    if q.priority:
        where.append(workitems.c.priority == q.priority)
    if q.text:
        prefix = q.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append(or_(func.lower(workitems.c.patient_name).like(prefix.lower()),
                         workitems.c.patient_id.like(prefix), workitems.c.accession_number.like(prefix)))
    return where


def _order(q: WorklistQuery) -> tuple[list[Any], ColumnElement[bool] | None]:
    """ORDER BY columns and the keyset condition for rows after the cursor."""
    if q.sort == "age":
        after = None
        if q.after:
            after = workitems.c.seq > _cursor(q.after, 1)[0]
        return [workitems.c.seq], after
    after = None
    if q.after:
        rank, seq = _cursor(q.after, 2)
        after = tuple_(workitems.c.priority_rank, workitems.c.seq) > tuple_(rank, seq)
    return [workitems.c.priority_rank, workitems.c.seq], after


def _cursor(value: str, parts: int) -> list[int]:
    try:
        numbers = [int(p) for p in value.split(".")]
    except ValueError:
        numbers = []
    if len(numbers) != parts:
        raise WorklistError(f"after={value!r} is not a cursor this list gave")
    return numbers


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _row(r: Any) -> dict[str, Any]:
    return {
        "uid": r.uid, "state": r.state, "priority": r.priority, "label": r.procedure_step_label,
        "worklist_label": r.worklist_label, "input_readiness": r.input_readiness,
        "patient_name": r.patient_name, "patient_id": r.patient_id, "accession_number": r.accession_number,
        "study_uid": r.study_uid, "study_date": r.study_date, "scheduled": _iso(r.start_dt),
        "created": _iso(r.created_at), "holder": r.holder, "read_group": r.read_group,
    }


async def worklist(engine: AsyncEngine, q: WorklistQuery) -> dict[str, Any]:
    """{"rows": [...], "next": cursor or None, "counts": {state: n}, "capped": [states counted
    only up to COUNT_CAP]} for ``q``."""
    q.check()
    where = _filters(q)
    order, after = _order(q)
    listed = [*where, *([workitems.c.state == q.state] if q.state else []), *([after] if after is not None else [])]
    query = (
        select(workitems.c.uid, workitems.c.seq, workitems.c.state, workitems.c.priority,
               workitems.c.priority_rank, workitems.c.procedure_step_label, workitems.c.worklist_label,
               workitems.c.input_readiness, workitems.c.patient_name, workitems.c.patient_id,
               workitems.c.accession_number, workitems.c.study_uid, workitems.c.start_dt, workitems.c.created_at,
               workitems.c.claimant.label("holder"),  # who holds the claim
               workitems.c.read_group, studies.c.study_date)
        .select_from(workitems.outerjoin(studies, studies.c.study_uid == workitems.c.study_uid))
        .where(*listed)
        .order_by(*order)
        .limit(q.limit + 1)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
        counts = {state: (await conn.execute(_capped_count(where, state))).scalar_one() for state in STATES}
    page = rows[:q.limit]
    more = len(rows) > q.limit
    last = page[-1] if page else None
    cursor = None
    if more and last is not None:
        cursor = str(last.seq) if q.sort == "age" else f"{last.priority_rank}.{last.seq}"
    return {"rows": [_row(r) for r in page], "next": cursor, "counts": counts,
            "capped": [state for state, n in counts.items() if n >= COUNT_CAP]}


def _capped_count(where: list[ColumnElement[bool]], state: str) -> Any:
    """How many rows of ``state`` match, counting no further than COUNT_CAP."""
    matching = select(workitems.c.uid).where(*where, workitems.c.state == state).limit(COUNT_CAP).subquery()
    return select(func.count()).select_from(matching)


async def worklist_label_values(engine: AsyncEngine, limit: int = 200) -> list[str]:
    """The Worklist Labels in use (for the page's filter)."""
    query = (select(workitems.c.worklist_label).distinct().where(workitems.c.worklist_label.is_not(None))
             .order_by(workitems.c.worklist_label).limit(limit))
    async with engine.connect() as conn:
        return list((await conn.execute(query)).scalars().all())
