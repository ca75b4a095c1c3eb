"""UPS search: a ``Query`` compiled to SQL over ``workitems`` by the one matcher
(``dicom/matching.py``: indexed columns from the attribute table, the rest in the JSONB dataset,
whose GIN index ``workitems_dataset`` narrows the rows), and result shaping. Used by
GET /workitems, C-FIND, claim-next and filtered subscriptions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, ColumnElement, Select, and_, case, false, func, select, true
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import visitors

from ..db.tables import INDEXED_TEXT_MAX, SEQUENCE_VALUE_COLUMNS, workitems
from ..dicom.dataset import JsonDataset, vr_of
from ..dicom.matching import Target, key_clause, literal_value
from ..dicom.query import Match, Query
from ..dicom.tags import SPECIFIC_CHARACTER_SET, TRANSACTION_UID
from . import tags as t
from .attribute_table import CONDITIONAL_RETURN_KEYS, MATCH_COLUMNS, RETURN_KEYS

# Top-level keys matched on an indexed column: tag -> (column, kind), from the attribute table.
_COLUMNS: dict[str, tuple[Any, str]] = {tag: (workitems.c[name], kind) for tag, (name, kind) in MATCH_COLUMNS.items()}


WORKITEMS = Target(_COLUMNS, workitems.c.dataset,
                   {path: workitems.c[name] for name, path in SEQUENCE_VALUE_COLUMNS.items()}, INDEXED_TEXT_MAX)


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


def http_returns(query: Query) -> tuple[tuple[str, str | None], ...]:
    """What a Search result (UPS-QS-04) holds, in tag order, as (tag, VR): Type 1/2 return keys, the
    matching keys and includefield attributes, each with its VR (an empty element when the workitem
    has none); 1C/2C return keys with None (only when present). Never the Transaction UID (UPS-QS-09)."""
    returned = {tag: vr_of(tag) for tag in (*RETURN_KEYS, *(m.tag for m in query.keys), *query.include)}
    conditional = {tag: None for tag in CONDITIONAL_RETURN_KEYS if tag not in returned}
    return tuple(sorted(((tag, vr) for tag, vr in {**returned, **conditional}.items() if tag != TRANSACTION_UID)))


def shape_http(ds: JsonDataset, query: Query, returns: tuple[tuple[str, str | None], ...] | None = None
               ) -> JsonDataset:
    """A Search result: ``http_returns(query)`` (``returns``, computed once per page) of ``ds``;
    ``includefield=all``: the whole dataset but the Transaction UID."""
    if query.include_all:
        return {tag: elem for tag, elem in sorted(ds.items()) if tag != TRANSACTION_UID}
    out: JsonDataset = {}
    for tag, vr in returns or http_returns(query):
        elem = ds.get(tag)
        if vr is None:
            if tag in ds:
                out[tag] = elem
        else:
            out[tag] = elem or {"vr": vr}
    return out


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


@dataclass
class Page:
    """One page of a search: its datasets, shaped as the query asks; ``remaining``: how many matches
    follow it (counted only when asked: else 0 when none follow, None when some do); ``last``: the
    creation-order key (``seq``) of its last row when matches follow it (the keyset position of the
    next page), else None."""

    datasets: list[JsonDataset]
    remaining: int | None
    last: int | None


def page_statement(where: ColumnElement[bool], *, after: int | None, offset: int, limit: int | None,
                   count: bool = False) -> Select:
    """The page's rows (seq, dataset) in creation order, one more than ``limit`` (to tell whether
    matches follow), in one statement (one round trip). The keys are found first (an index-only scan
    where the worklist index covers the keys), then only the page's datasets are read from the table:
    a JSONB dataset is a heap page of its own, and a filter walking rows in seq order would read one
    per row it passes. With ``count`` (and a ``limit``), each row also holds ``remaining``: how many
    matches follow the page's ``limit``-th row (0, not counted, when the page is not full; counted
    once). ``after``, ``offset`` and ``limit`` are literals, as the keys' values
    (``literal_value``): the statement is planned for them."""
    keys = select(workitems.c.seq).where(where)
    if after is not None:
        keys = keys.where(workitems.c.seq > literal_value(after))
    keys = keys.order_by(workitems.c.seq).offset(literal_value(offset))
    if limit is not None:
        keys = keys.limit(literal_value(limit + 1))
    page = keys.cte("page")
    columns: list[Any] = [workitems.c.seq, workitems.c.dataset]
    if count and limit:
        last = select(page.c.seq).order_by(page.c.seq).offset(literal_value(limit - 1)).limit(literal_value(1))
        after_page = (select(func.count()).select_from(workitems)
                      .where(where, workitems.c.seq > last.scalar_subquery()).correlate(None).scalar_subquery())
        # the count runs only when the page is full: PostgreSQL evaluates a subquery when its value is needed
        full = select(func.count()).select_from(page).scalar_subquery() > literal_value(limit)
        columns.append(case((full, after_page), else_=literal_value(0)).label("remaining"))
    return select(*columns).join_from(page, workitems, workitems.c.seq == page.c.seq).order_by(page.c.seq)


# Page statements built before, by what they are built from (most recently used last): building one
# (the matcher's SQLAlchemy expressions, then SQLAlchemy's cache key of a new statement) cost more Python
# time than the request's database work; a worklist repeats the same search on every refresh.
_STATEMENTS: dict[Any, Select] = {}
STATEMENTS_KEPT = 512


def _within_key(within: ColumnElement[bool] | None) -> Any:
    """``within`` as a key: its SQL structure and its parameters' values."""
    if within is None:
        return None
    key = within._generate_cache_key()
    return key.key, tuple(repr(p.effective_value) for p in key.bindparams)


# The columns of the worklist index workitems_state_label_seq (migration 0014):
# (state, worklist_label, seq) INCLUDE (start_dt, performer_codes).
_WORKLIST_INDEX = frozenset(("state", "worklist_label", "seq", "start_dt", "performer_codes"))


def _columns(clause: ColumnElement[bool]) -> set[str]:
    return {el.name for el in visitors.iterate(clause) if isinstance(el, Column) and el.table is workitems}


def worklist_keys(query: Query) -> ColumnElement[bool] | None:
    """The keys of a worklist search that the worklist index holds, when the search has exact state and
    Worklist Label keys (the index's leading columns), another key the index holds (performer code,
    start date range: they narrow the candidates) and a key it does not hold (e.g. a Patient's Name
    wildcard): None otherwise. Such a search gets ``seq IN (SELECT seq ... WHERE <these keys>
    OFFSET 0)`` beside all its keys (the same rows): PostgreSQL can then find the few candidates in the
    index alone and read only their rows, where without it it could only read every row of the state
    and label or bitmap-AND the performer codes' GIN index (20,188 entries for one code at 1M
    workitems): 1.8 ms instead of 15.4 ms p50 under the same load (EXPLAIN ANALYZE, benchmarks/search.py
    all-keys search)."""
    def exact(tag: str) -> bool:
        m = query.find(tag)
        return m is not None and len(m.values) == 1 and "*" not in m.values[0] and "?" not in m.values[0]

    if not (exact(t.PROCEDURE_STEP_STATE) and exact(t.WORKLIST_LABEL)):
        return None
    clauses = [match_clause(m) for m in query.keys if not m.is_universal]
    held = [c for c in clauses if _columns(c) <= _WORKLIST_INDEX]
    return and_(*held) if 2 < len(held) < len(clauses) else None


def statement_for(query: Query, *, after: int | None, offset: int, limit: int | None, count: bool,
                  within: ColumnElement[bool] | None) -> Select:
    """``page_statement`` of ``query``'s keys and ``within``, built once per distinct search and kept."""
    key = (repr(query.keys), _within_key(within), after, offset, limit, count)
    stmt = _STATEMENTS.pop(key, None)
    if stmt is None:
        where = where_clause(query)
        held = worklist_keys(query)
        if held is not None:
            candidates = select(workitems.c.seq).where(held).offset(literal_value(0)).correlate(None)  # OFFSET 0: kept
            where = and_(where, workitems.c.seq.in_(candidates))
        if within is not None:
            where = and_(where, within)
        stmt = page_statement(where, after=after, offset=offset, limit=limit, count=count)
        if len(_STATEMENTS) >= STATEMENTS_KEPT:
            del _STATEMENTS[next(iter(_STATEMENTS))]
    _STATEMENTS[key] = stmt
    return stmt


async def search(engine: AsyncEngine, query: Query, *, offset: int = 0, limit: int | None = None,
                 after: int | None = None, count: bool = True, within: ColumnElement[bool] | None = None) -> Page:
    """The matching workitems in creation order after ``after`` (a previous page's ``last``) and
    ``offset`` more, at most ``limit``, shaped as the query asks (C-FIND: the keys only; Search: the
    return keys too); with ``count``, how many matches follow the page; ``within``: what the caller
    may see (None: everything). One statement (``statement_for``): on an ``autocommit`` engine
    (db/engine.py), one round trip."""
    rows: list[Any] = []
    remaining: int | None = 0
    if limit != 0:
        stmt = statement_for(query, after=after, offset=offset, limit=limit, count=count, within=within)
        async with engine.connect() as conn:
            rows = list((await conn.execute(stmt)).all())
    if limit is not None and len(rows) > limit:
        remaining = rows[0].remaining if count else None
        rows = rows[:limit]
    last = rows[-1].seq if rows and remaining != 0 else None
    datasets = [r.dataset for r in rows]
    if query.keys_are_returned:
        return Page([shape_dimse(ds, query.keys) for ds in datasets], remaining, last)
    returns = http_returns(query)
    return Page([shape_http(ds, query, returns) for ds in datasets], remaining, last)
