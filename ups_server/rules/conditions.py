"""Evaluate rule conditions against a DICOM JSON dataset plus the special subjects."""

from __future__ import annotations

from typing import Any

from ..dicom.dataset import JsonDataset
from ..dicom.tags import CODE_MEANING, CODE_VALUE, CODING_SCHEME_DESIGNATOR
from .model import Condition
from .paths import resolve


def _values(cond: Condition, ds: JsonDataset, special: dict[str, str | None]) -> list[Any]:
    if cond.path is None:
        value = special.get(cond.subject)
        return [] if value in (None, "") else [value]
    return resolve(ds, cond.path)


def _code_matches(item: Any, cond: Condition) -> bool:
    if not isinstance(item, dict) or cond.code is None:
        return False
    got = {k: (item.get(k) or {}).get("Value", [None])[0]
           for k in (CODE_VALUE, CODING_SCHEME_DESIGNATOR, CODE_MEANING)}
    return (got[CODE_VALUE] == cond.code.value and got[CODING_SCHEME_DESIGNATOR] == cond.code.scheme
            and (cond.code.meaning is None or got[CODE_MEANING] == cond.code.meaning))


def holds(cond: Condition, ds: JsonDataset, special: dict[str, str | None]) -> bool:
    vals = _values(cond, ds, special)
    if cond.op == "absent":
        result = not vals
    elif cond.op == "present":
        result = bool(vals)
    elif cond.op == "equals":
        result = any(str(v) in cond.values for v in vals)
    elif cond.op == "matches":
        assert cond.pattern is not None
        result = any(cond.pattern.fullmatch(str(v)) for v in vals)
    else:  # code
        result = any(_code_matches(v, cond) for v in vals)
    return result != cond.negate


def all_hold(conds: list[Condition], ds: JsonDataset, special: dict[str, str | None]) -> bool:
    return all(holds(c, ds, special) for c in conds)
