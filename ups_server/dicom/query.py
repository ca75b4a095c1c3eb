"""Search keys of a UPS query (PS3.4 C.2.2.2, PS3.18 8.3.4) as one ``Query`` object.

Two front doors give the same object: ``parse_http_query`` (GET /workitems query parameters)
and ``query_from_identifier`` (a C-FIND identifier as DICOM JSON). ``ups.search`` compiles
it to SQL; nothing here touches the database.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .dataset import JsonDataset, tag_of, vr_of
from .datetime import parse_dt
from .tags import SPECIFIC_CHARACTER_SET
from .validation import DECIMAL_VRS, INTEGER_RANGES, InvalidDataset, check_decimal, check_integer, number_kind

RANGE_VRS = ("DA", "DT", "TM")
WILDCARD_VRS = ("AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT")
# Query parameters that are not attributes (PS3.18 Table 8.3.4-1, 11.1.2-1).
CONTROL_PARAMS = ("includefield", "limit", "offset", "fuzzymatching", "emptyvaluematching",
                  "multiplevaluematching", "accept", "charset")
_HEX_TAG = re.compile(r"^[0-9A-F]{8}$")
_TM = re.compile(r"^\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?$")


class QueryError(ValueError):
    """A query that cannot be understood; the message says what to fix (HTTP 400, C-FIND Cxxx)."""


@dataclass
class Match:
    """One key: an attribute with the values to match, or, for a sequence, the keys of its item.

    ``values`` empty = universal matching (a return key). For a UID (UI) several values are a
    List of UID match. ``item`` is None for a non-sequence; for a sequence, the item's keys
    (empty: universal).
    """

    tag: str
    vr: str
    values: list[str] = field(default_factory=list)
    item: list[Match] | None = None

    @property
    def is_sequence(self) -> bool:
        return self.vr == "SQ"

    @property
    def is_universal(self) -> bool:
        if self.is_sequence:
            return not self.item or all(m.is_universal for m in self.item)
        return not self.values or any(v == "*" for v in self.values)

    def find(self, tag: str) -> Match | None:
        return next((m for m in self.item or [] if m.tag == tag), None)


@dataclass
class Query:
    """Matching keys plus what to return and which page.

    ``keys``: top-level matches. ``include``: extra top-level tags to return (HTTP includefield);
    ``include_all``: return whole datasets. ``keys_are_returned``: the keys are also the only
    return keys (a C-FIND identifier); else the Search return keys (PS3.18) are given too.
    """

    keys: list[Match] = field(default_factory=list)
    keys_are_returned: bool = False
    include: list[str] = field(default_factory=list)
    include_all: bool = False
    fuzzy: bool = False
    empty_value: bool = False  # emptyvaluematching=true (not supported: literal matching)
    multiple_value: bool = False  # multiplevaluematching=true (not supported)
    limit: int | None = None
    offset: int = 0

    def find(self, tag: str) -> Match | None:
        return next((m for m in self.keys if m.tag == tag), None)


# ---- values ---------------------------------------------------------------------------------


_D = r"\d{4,14}(?:\.\d{1,6})?"
_OFFSET = r"[+-](?:0\d|1[0-4])[0-5]\d"
_DT_SINGLE_WITH_OFFSET = re.compile(rf"^{_D}{_OFFSET}$")
_DT_RANGE = re.compile(rf"^(?P<a>{_D}(?:{_OFFSET})?)?-(?P<b>{_D}(?:{_OFFSET})?)?$")


def split_range(vr: str, value: str) -> tuple[str | None, str | None] | None:
    """``(low, high)`` for a range value (``a-b``, ``-b``, ``a-``; missing end None), else None."""
    if vr not in RANGE_VRS or "-" not in value:
        return None
    if vr == "DT":
        if _DT_SINGLE_WITH_OFFSET.match(value):
            return None  # one DT with a negative UTC offset, e.g. 20261123-0500
        m = _DT_RANGE.match(value)
        if not m:
            raise QueryError(f"{value!r} is not a DT value or range (a-b, -b, a-)")
        return m["a"], m["b"]
    low, _, high = value.partition("-")
    if "-" in high:
        raise QueryError(f"{value!r} is not a {vr} value or range (a-b, -b, a-)")
    return low or None, high or None


def check_value(tag: str, vr: str, value: str) -> None:
    """Raise QueryError if ``value`` is not a valid single value or range for ``vr``."""
    if "\x00" in value:
        raise QueryError(f"{label(tag)}: the value holds a NUL character")
    if value in ("", "*"):
        return
    if vr in INTEGER_RANGES or vr in DECIMAL_VRS:
        _check_number(tag, vr, value)
    if vr not in RANGE_VRS:
        return
    try:
        ends = split_range(vr, value)
    except QueryError as exc:
        raise QueryError(f"{label(tag)}: {exc}") from None
    for end in ends if ends is not None else (value,):
        if end is not None and not _valid(vr, end):
            raise QueryError(f"{label(tag)}: {end!r} is not a valid {vr} value")
    if ends == (None, None):
        raise QueryError(f"{label(tag)}: {value!r} is not a {vr} range")


def _check_number(tag: str, vr: str, value: str) -> None:
    """A numeric VR's key: one finite number of the VR (no nan, inf, 1e999)."""
    try:
        if vr in INTEGER_RANGES:
            check_integer(vr, _as_number(value, int), label(tag))
        else:
            check_decimal(vr, _as_number(value, float), label(tag))
    except InvalidDataset:
        raise QueryError(f"{label(tag)}: {value!r} is not {number_kind(vr)}") from None


def _as_number(value: str, kind: type) -> Any:
    try:
        return kind(value.strip())
    except ValueError:
        return value


def _valid(vr: str, value: str) -> bool:
    if vr == "TM":
        return bool(_TM.match(value))
    try:
        parse_dt(value)
    except ValueError:
        return False
    return vr != "DA" or len(value) == 8


def label(tag: str) -> str:
    """``'00100010'`` -> ``'PatientName (0010,0010)'`` for messages."""
    from pydicom.datadict import keyword_for_tag

    return f"{keyword_for_tag(int(tag, 16)) or 'attribute'} ({tag[:4]},{tag[4:]})"


# ---- HTTP -----------------------------------------------------------------------------------


def _tags_of_path(path: str) -> list[str]:
    parts = path.split(".")
    tags: list[str] = []
    for i, part in enumerate(parts):
        try:
            tag = tag_of(part.strip())
        except ValueError:
            raise QueryError(f"unknown attribute {part!r} in {path!r} (use a keyword or 8 hex digits)") from None
        if i < len(parts) - 1 and vr_of(tag) != "SQ":
            raise QueryError(f"{part!r} in {path!r} is not a sequence")
        tags.append(tag)
    return tags


def _add_path(keys: list[Match], tags: list[str], value: str) -> None:
    tag, rest = tags[0], tags[1:]
    vr = vr_of(tag)
    found = next((m for m in keys if m.tag == tag), None)
    if not rest:
        if found is not None:
            raise QueryError(f"{label(tag)} is given more than once")
        if vr == "SQ" and value:
            raise QueryError(f"{label(tag)} is a sequence: match on its items (e.g. {tag}.00080100=...)")
        keys.append(Match(tag, vr, _http_values(tag, vr, value), [] if vr == "SQ" else None))
        return
    if found is None:
        found = Match(tag, vr, item=[])
        keys.append(found)
    elif found.item is None:
        raise QueryError(f"{label(tag)} is given more than once")
    _add_path(found.item, rest, value)


def _http_values(tag: str, vr: str, value: str) -> list[str]:
    if value == "":
        return []
    values = [v.strip() for v in value.split(",")] if vr == "UI" else [value]
    for v in values:
        if vr == "UI" and not v:
            raise QueryError(f"{label(tag)}: empty UID in list {value!r}")
        check_value(tag, vr, v)
    return values


MAX_INT_PARAM = 2**31 - 1


def int_param(name: str, value: str) -> int:
    """``limit`` / ``offset``: an integer from 0 to MAX_INT_PARAM, else QueryError."""
    try:
        number = int(value)
    except ValueError:
        number = -1
    if not 0 <= number <= MAX_INT_PARAM:
        raise QueryError(f"{name}={value!r}: expected an integer from 0 to {MAX_INT_PARAM}")
    return number


def _bool_param(name: str, value: str) -> bool:
    if value.lower() not in ("true", "false"):
        raise QueryError(f"{name}={value!r}: expected true or false")
    return value.lower() == "true"


def parse_http_query(items: list[tuple[str, str]]) -> Query:
    """Query parameters of a Search (PS3.18 8.3.4) -> Query; QueryError for bad syntax."""
    query = Query()
    seen_control: set[str] = set()
    for name, value in items:
        key = name.strip()
        lower = key.lower()
        if lower == "includefield":
            for field_name in (f.strip() for f in value.split(",")):
                if not field_name:
                    continue
                if field_name.lower() == "all":
                    query.include_all = True
                    continue
                tag = _tags_of_path(field_name)[0]
                if tag not in query.include:
                    query.include.append(tag)
            continue
        if lower in CONTROL_PARAMS:
            if lower in seen_control:
                raise QueryError(f"{key} is given more than once")
            seen_control.add(lower)
            if lower == "limit":
                query.limit = int_param(key, value)
            elif lower == "offset":
                query.offset = int_param(key, value)
            elif lower == "fuzzymatching":
                query.fuzzy = _bool_param(key, value)
            elif lower == "emptyvaluematching":
                query.empty_value = _bool_param(key, value)
            elif lower == "multiplevaluematching":
                query.multiple_value = _bool_param(key, value)
            continue
        if not key:
            raise QueryError("empty query parameter name")
        _add_path(query.keys, _tags_of_path(key), value)
    return query


# ---- DIMSE identifier -----------------------------------------------------------------------


def _json_values(tag: str, vr: str, elem: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for v in elem.get("Value") or []:
        if v is None:
            continue
        if isinstance(v, dict):  # PN
            v = v.get("Alphabetic") or ""
        text = str(v)
        out.extend(text.split("\\") if vr == "UI" else [text])
    out = [v for v in out if v != ""]
    if vr != "UI" and len(out) > 1:
        raise QueryError(f"{label(tag)}: only one value may be matched (got {len(out)})")
    for v in out:
        check_value(tag, vr, v)
    return out


def _identifier_keys(ds: JsonDataset, top: bool) -> list[Match]:
    keys: list[Match] = []
    for raw_tag, elem in ds.items():
        tag = raw_tag.upper()
        if not _HEX_TAG.match(tag):
            raise QueryError(f"{raw_tag!r}: attribute keys must be 8 hexadecimal digits")
        if not isinstance(elem, dict):
            raise QueryError(f"{raw_tag}: element must be an object")
        if top and (tag == SPECIFIC_CHARACTER_SET or tag.startswith("0000")):
            continue  # never matched (PS3.4 C.2.2.2); command group is not a key
        vr = elem.get("vr") or vr_of(tag)
        if vr == "SQ":
            item_list = [i for i in elem.get("Value") or [] if isinstance(i, dict)]
            if len(item_list) > 1:
                raise QueryError(f"{label(tag)}: a sequence key holds at most one item")
            keys.append(Match(tag, vr, item=_identifier_keys(item_list[0], False) if item_list else []))
        else:
            keys.append(Match(tag, vr, _json_values(tag, vr, elem)))
    return keys


def query_from_identifier(ds: dict) -> Query:
    """A C-FIND Identifier (DICOM JSON) -> Query. Zero-length elements are universal matches
    (return keys); a sequence item's keys are sequence matching; UID lists are multiple values."""
    if not isinstance(ds, dict):
        raise QueryError("the identifier must be a DICOM JSON object")
    return Query(keys=_identifier_keys(ds, True), keys_are_returned=True)
