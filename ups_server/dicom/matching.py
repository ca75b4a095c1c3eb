"""The one matcher (DESIGN.md): a ``Query`` (``dicom/query.py``) compiled to SQL over a table.

A ``Target`` names the table's indexed columns (tag -> column, kind), its array columns (a path of
tags down sequences -> a text[] column of every value found there) and its JSONB column holding
the row's DICOM JSON. Top-level keys with an indexed column match on the column (single value,
UID list, wildcard, DA/DT range, case-insensitive PN). A sequence key whose one matching key is an
exact value on an array column's path matches on that column alone (``col @> ARRAY[value]``, a
narrow GIN index); with more keys in its items the column narrows the rows and the dataset decides.
Everything else matches in the JSONB dataset: ``jsonb_path_exists`` with the values passed as
jsonpath variables (the path itself holds only validated hex tags and escaped regex literals), plus
a ``@>`` containment of the exact values so that a GIN index (jsonb_path_ops) narrows the rows.
Values are SQL literals in the statement's text, not parameters (``literal_value``). Used by
UPS search / C-FIND / claim-next / filtered subscriptions (``ups/search.py``) and QIDO-RS
(``ingest/catalog.py``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Text, and_, bindparam, cast, func, true
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, JSONPATH, array

from .datetime import parse_dt
from .query import WILDCARD_VRS, Match, Query, split_range


@dataclass(frozen=True)
class Target:
    """What a query is compiled against: ``columns`` tag -> (column, kind: text, dt, da, pn,
    text+json); ``dataset``: the JSONB column of the row's DICOM JSON (None: columns only);
    ``arrays``: path of tags (sequences, then the attribute) -> text[] column holding every string
    value at that path that is at most ``array_text_max`` characters long."""

    columns: dict[str, tuple[Any, str]]
    dataset: Any = None
    arrays: dict[tuple[str, ...], Any] = field(default_factory=dict)
    array_text_max: int = 256

    def supports(self, m: Match) -> bool:
        return m.tag in self.columns or self.dataset is not None


_NUMERIC_VRS = ("DS", "FD", "FL", "IS", "SL", "SS", "SV", "UL", "US", "UV")


def literal_value(value: Any, type_: Any = None) -> Any:
    """A key's value as an SQL literal, rendered (quoted by SQLAlchemy) into the statement's text when
    it runs, not sent as a parameter: PostgreSQL then plans each search for its values (a LIKE prefix
    reaches its index only as a constant; a range's width decides between indexes), where a prepared
    statement's plan made for any value, which it falls back to after five runs, scanned the table
    (a name prefix: 2 s at 1M workitems). The same search repeats the same text: its prepared
    statement and plan are reused."""
    return bindparam(None, value, type_=type_, literal_execute=True, expanding=isinstance(value, list))

# ---- matching -----------------------------------------------------------------------------


def _has_wildcard(vr: str, value: str) -> bool:
    return vr in WILDCARD_VRS and ("*" in value or "?" in value)


def _like_pattern(value: str) -> str:
    """DICOM wildcards -> a LIKE pattern with backslash as escape character."""
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def _column_match(col: Any, kind: str, m: Match) -> ColumnElement[bool]:
    if len(m.values) > 1:  # List of UID
        return col.in_(literal_value(m.values, col.type))
    value = m.values[0]
    if kind == "dt":
        ends = split_range("DT", value)
        low, high = ends if ends is not None else (value, value)
        conds = []
        if low:
            conds.append(col >= literal_value(parse_dt(low), col.type))
        if high:
            conds.append(col <= literal_value(parse_dt(high, upper=True), col.type))
        return and_(*conds)
    if kind == "da":
        ends = split_range("DA", value)
        if ends is None:
            return col == literal_value(value)
        return and_(*([col >= literal_value(ends[0])] if ends[0] else []), *([col <= literal_value(ends[1])] if ends[1] else []))
    if kind == "pn":  # PN matching is case-insensitive
        if _has_wildcard(m.vr, value):
            return func.lower(col).like(literal_value(_like_pattern(value).lower()), escape="\\")
        return func.lower(col) == literal_value(value.lower())
    if _has_wildcard(m.vr, value):
        return col.like(literal_value(_like_pattern(value)), escape="\\")
    return col == literal_value(value)


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


def _leaves(m: Match, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Match]]:
    """The matching (non-universal) keys below a sequence key ``m``, each with its path of tags."""
    path = (*path, m.tag)
    if not m.is_sequence:
        return [(path, m)]
    return [leaf for k in m.item or [] if not k.is_universal for leaf in _leaves(k, path)]


def _sequence_match(m: Match, target: Target) -> ColumnElement[bool]:
    """A sequence key: on an array column where its keys allow, else (or also) in the dataset."""
    leaves = _leaves(m)
    narrowing = [
        target.arrays[path].contains(cast(array([literal_value(key.values[0])]), ARRAY(Text)))
        for path, key in leaves
        if path in target.arrays and _containment(key) is not None and len(key.values[0]) <= target.array_text_max
    ]
    if len(leaves) == 1 and narrowing:  # one exact value down one path: the column holds the answer
        return narrowing[0]
    return and_(*narrowing, _json_match(target.dataset, m))


def _json_match(dataset: Any, m: Match) -> ColumnElement[bool]:
    builder = _JsonPath()
    cond = builder.cond(m)
    if cond is None:
        return true()
    exists = func.jsonb_path_exists(
        dataset,
        cast(literal_value(f"$ ? ({cond})"), JSONPATH),
        cast(literal_value(json.dumps(builder.vars)), JSONB),
    )
    doc = _containment(m)
    if doc is None:
        return exists
    return and_(dataset.contains(cast(literal_value(json.dumps({m.tag: doc})), JSONB)), exists)


def key_clause(m: Match, target: Target) -> ColumnElement[bool]:
    """The condition one top-level key puts on a row of ``target`` (``true()`` when universal)."""
    if m.is_universal:
        return true()
    if m.is_sequence:
        return _sequence_match(m, target)
    column = target.columns.get(m.tag)
    if column is None:
        return _json_match(target.dataset, m)
    col, kind = column
    if kind == "text+json":
        return and_(_column_match(col, "text", m), _json_match(target.dataset, m))
    return _column_match(col, kind, m)


def where(query: Query, target: Target) -> ColumnElement[bool]:
    """All keys of ``query`` as one WHERE condition on ``target``."""
    return and_(true(), *(key_clause(m, target) for m in query.keys if not m.is_universal))
