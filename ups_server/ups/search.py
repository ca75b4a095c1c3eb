"""The one matcher (DESIGN.md): a ``Query`` compiled to SQL over ``workitems``, and result shaping.

Top-level keys with an indexed column match on the column (single value, UID list, wildcard,
DA/DT range, case-insensitive PN). Everything else, and every sequence key, matches in the
JSONB dataset: ``jsonb_path_exists`` with the values passed as jsonpath variables (the path
itself holds only validated hex tags and escaped regex literals), plus a ``@>`` containment of
the exact values so that the GIN index ``workitems_dataset`` (jsonb_path_ops) narrows the rows.
Used by GET /workitems, C-FIND, claim-next and filtered subscriptions.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import ColumnElement, and_, cast, false, func, literal, select, true
from sqlalchemy.dialects.postgresql import JSONB, JSONPATH
from sqlalchemy.ext.asyncio import AsyncEngine

from ..db.tables import workitems
from ..dicom.dataset import JsonDataset, vr_of
from ..dicom.datetime import parse_dt
from ..dicom.query import SPECIFIC_CHARACTER_SET, TRANSACTION_UID, WILDCARD_VRS, Match, Query, split_range
from . import tags as t
from .attribute_table import CONDITIONAL_RETURN_KEYS, MATCH_COLUMNS, RETURN_KEYS

_NUMERIC_VRS = ("DS", "FD", "FL", "IS", "SL", "SS", "SV", "UL", "US", "UV")

# Top-level keys matched on an indexed column: tag -> (column, kind), from the attribute table.
_COLUMNS: dict[str, tuple[Any, str]] = {tag: (workitems.c[name], kind) for tag, (name, kind) in MATCH_COLUMNS.items()}


# ---- matching -----------------------------------------------------------------------------


def _has_wildcard(vr: str, value: str) -> bool:
    return vr in WILDCARD_VRS and ("*" in value or "?" in value)


def _like_pattern(value: str) -> str:
    """DICOM wildcards -> a LIKE pattern with backslash as escape character."""
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def _column_match(col: Any, kind: str, m: Match) -> ColumnElement[bool]:
    if len(m.values) > 1:  # List of UID
        return col.in_(m.values)
    value = m.values[0]
    if kind == "dt":
        ends = split_range("DT", value)
        low, high = ends if ends is not None else (value, value)
        conds = []
        if low:
            conds.append(col >= parse_dt(low))
        if high:
            conds.append(col <= parse_dt(high, upper=True))
        return and_(*conds)
    if kind == "da":
        ends = split_range("DA", value)
        if ends is None:
            return col == value
        return and_(*([col >= ends[0]] if ends[0] else []), *([col <= ends[1]] if ends[1] else []))
    if kind == "pn":  # PN matching is case-insensitive
        if _has_wildcard(m.vr, value):
            return func.lower(col).like(_like_pattern(value).lower(), escape="\\")
        return func.lower(col) == value.lower()
    if _has_wildcard(m.vr, value):
        return col.like(_like_pattern(value), escape="\\")
    return col == value


def _regex_literal(value: str, whole: bool = True) -> str:
    """A jsonpath string literal holding a POSIX regex for a DICOM wildcard value."""
    out = []
    for ch in value:
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        elif ch.isalnum():
            out.append(ch)
        else:
            out.append("\\" + ch)
    regex = "^" + "".join(out) + "$" if whole else "".join(out)
    return json.dumps(regex)  # a JSON string literal is a valid jsonpath string literal


def _typed(vr: str, value: str) -> Any:
    if vr in _NUMERIC_VRS:
        try:
            number = float(value)
        except ValueError:
            return value
        return int(number) if number.is_integer() else number
    return value


class _JsonPath:
    """Builds one jsonpath filter expression; values go to ``vars``."""

    def __init__(self) -> None:
        self.vars: dict[str, Any] = {}

    def _var(self, value: Any) -> str:
        name = f"v{len(self.vars)}"
        self.vars[name] = value
        return f"${name}"

    def cond(self, m: Match) -> str | None:
        """A filter on ``@`` (a dataset or sequence item) true when ``m`` matches; None: universal."""
        if m.is_universal:
            return None
        if m.is_sequence:
            inner = [c for c in (self.cond(k) for k in m.item or []) if c]
            return f'exists(@."{m.tag}".Value[*] ? ({" && ".join(inner)}))'
        path = f'@."{m.tag}".Value[*]' + (".Alphabetic" if m.vr == "PN" else "")
        tests = " || ".join(f"({self._test(m.vr, v)})" for v in m.values)
        return f"exists({path} ? ({tests}))"

    def _test(self, vr: str, value: str) -> str:
        if vr == "PN":
            return f'@ like_regex {_regex_literal(value)} flag "i"'
        if _has_wildcard(vr, value):
            return f"@ like_regex {_regex_literal(value)}"
        ends = split_range(vr, value)
        if ends is not None:
            low, high = ends
            parts = ([f"@ >= {self._var(low)}"] if low else []) + ([f"@ <= {self._var(high)}"] if high else [])
            return " && ".join(parts)
        return f"@ == {self._var(_typed(vr, value))}"


def _containment(m: Match) -> dict[str, Any] | None:
    """The exact part of ``m`` as a JSONB document for ``dataset @> doc`` (GIN-indexed)."""
    if m.is_universal:
        return None
    if m.is_sequence:
        item = {k.tag: c for k in m.item or [] if (c := _containment(k)) is not None}
        return {"Value": [item]} if item else None
    if len(m.values) != 1 or m.vr in ("PN", *_NUMERIC_VRS, "DA", "DT", "TM"):
        return None
    value = m.values[0]
    return None if _has_wildcard(m.vr, value) else {"Value": [value]}


def _json_match(m: Match) -> ColumnElement[bool]:
    builder = _JsonPath()
    cond = builder.cond(m)
    if cond is None:
        return true()
    exists = func.jsonb_path_exists(
        workitems.c.dataset,
        cast(literal(f"$ ? ({cond})"), JSONPATH),
        cast(literal(json.dumps(builder.vars)), JSONB),
    )
    doc = _containment(m)
    if doc is None:
        return exists
    return and_(workitems.c.dataset.contains(cast(literal(json.dumps({m.tag: doc})), JSONB)), exists)


def match_clause(m: Match) -> ColumnElement[bool]:
    """The condition one top-level key puts on a workitem row (``true()`` when universal)."""
    if m.is_universal:
        return true()
    if m.tag == TRANSACTION_UID:
        return false()  # "cannot be queried" (Table CC.2.5-3): never disclosed by matching
    column = _COLUMNS.get(m.tag)
    if column is None or m.is_sequence:
        return _json_match(m)
    col, kind = column
    if kind == "text+json":
        return and_(_column_match(col, "text", m), _json_match(m))
    return _column_match(col, kind, m)


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

