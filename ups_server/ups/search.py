"""UPS search: a ``Query`` compiled to SQL over ``workitems`` by the one matcher
(``dicom/matching.py``: indexed columns from the attribute table, the rest in the JSONB dataset,
whose GIN index ``workitems_dataset`` narrows the rows), and result shaping. Used by
GET /workitems, C-FIND, claim-next and filtered subscriptions.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, false, func, select, true
from sqlalchemy.ext.asyncio import AsyncEngine

from ..db.tables import workitems
from ..dicom.dataset import JsonDataset, vr_of
from ..dicom.matching import Target, key_clause
from ..dicom.query import Match, Query
from ..dicom.tags import SPECIFIC_CHARACTER_SET, TRANSACTION_UID
from . import tags as t
from .attribute_table import CONDITIONAL_RETURN_KEYS, MATCH_COLUMNS, RETURN_KEYS

# Top-level keys matched on an indexed column: tag -> (column, kind), from the attribute table.
_COLUMNS: dict[str, tuple[Any, str]] = {tag: (workitems.c[name], kind) for tag, (name, kind) in MATCH_COLUMNS.items()}


WORKITEMS = Target(_COLUMNS, workitems.c.dataset)


def match_clause(m: Match) -> ColumnElement[bool]:
    """The condition one top-level key puts on a workitem row (``true()`` when universal)."""
    if m.tag == TRANSACTION_UID and not m.is_universal:
        return false()  # "cannot be queried" (Table CC.2.5-3): never disclosed by matching
    return key_clause(m, WORKITEMS)


def where_clause(query: Query) -> ColumnElement[bool]:
    """All keys of ``query`` as one WHERE condition on ``workitems``."""
    conds = [match_clause(m) for m in query.keys if not m.is_universal]
    return and_(true(), *conds)


# ---- result shaping -----------------------------------------------------------------------


def shape_http(ds: JsonDataset, query: Query) -> JsonDataset:
    """A Search result (UPS-QS-04): Type 1/2 return keys, 1C/2C when present, the matching
    keys and includefield attributes; ``includefield=all``: the whole dataset. Never the
    Transaction UID (UPS-QS-09)."""
    if query.include_all:
        out = dict(ds)
    else:
        out = {tag: ds[tag] for tag in CONDITIONAL_RETURN_KEYS if tag in ds}
        for tag in (*RETURN_KEYS, *(m.tag for m in query.keys), *query.include):
            out[tag] = ds.get(tag) or {"vr": vr_of(tag)}
    out.pop(TRANSACTION_UID, None)
    return dict(sorted(out.items()))


def shape_dimse(ds: JsonDataset, keys: list[Match], top: bool = True) -> JsonDataset:
    """A C-FIND response identifier (UPS-FIND-02): only the requested keys (+ Specific
    Character Set when the workitem has one); sequence items cut to the requested item keys.
    An Identifier with no keys matches every workitem (UPS-FIND-07, as Search without keys) and
    gets each one's SOP Instance UID: a response must name what matched, and an empty one
    cannot even be encoded."""
    if top and not any(m.tag != TRANSACTION_UID for m in keys):
        keys = [Match(t.SOP_INSTANCE_UID, "UI")]
    out: JsonDataset = {}
    if top and SPECIFIC_CHARACTER_SET in ds:
        out[SPECIFIC_CHARACTER_SET] = ds[SPECIFIC_CHARACTER_SET]
    for m in keys:
        if m.tag == TRANSACTION_UID:
            continue
        elem = ds.get(m.tag)
        if elem is None:
            out[m.tag] = {"vr": m.vr}
        elif m.is_sequence and m.item and elem.get("Value"):
            out[m.tag] = {"vr": "SQ", "Value": [shape_dimse(i, m.item, top=False) for i in elem["Value"]]}
        else:
            out[m.tag] = elem
    return dict(sorted(out.items()))


async def search(
    engine: AsyncEngine, query: Query, *, offset: int = 0, limit: int | None = None
) -> tuple[list[JsonDataset], int]:
    """The matching datasets in creation order, shaped as the query asks (C-FIND: the keys only;
    Search: the return keys too), and how many more matches there are after this page."""
    where = where_clause(query)
    async with engine.connect() as conn:
        rows: list[Any] = []
        if limit != 0:
            stmt = select(workitems.c.dataset).where(where).order_by(workitems.c.seq).offset(offset)
            if limit is not None:
                stmt = stmt.limit(limit)
            rows = list((await conn.execute(stmt)).scalars())
        remaining = 0
        if limit is not None and len(rows) == limit:  # a full page: count what follows it
            total = (await conn.execute(select(func.count()).select_from(workitems).where(where))).scalar_one()
            remaining = max(0, total - offset - len(rows))
    if query.keys_are_returned:
        return [shape_dimse(ds, query.keys) for ds in rows], remaining
    return [shape_http(ds, query) for ds in rows], remaining

