"""DICOM JSON as it arrives on the wire (PS3.18 F.2), checked in one place before anything is
stored: JSON that Python accepts but DICOM JSON and PostgreSQL do not (NaN, Infinity, numbers
that overflow, lone UTF-16 surrogates, NUL characters), a JSON type the VR does not allow
(F.2.3), members other than those of F.2.2, and datasets past the depth and size limits.

``loads`` parses a request body; ``validate`` checks a parsed dataset (the HTTP bodies, and the
DIMSE datasets after their conversion to DICOM JSON). Both raise ``InvalidDataset`` with a
reason a person can act on (HTTP 400, DIMSE 0106 / A900).
"""

from __future__ import annotations

import binascii
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from pydicom.datadict import dictionary_VR

JsonDataset = dict[str, Any]

_HEX_TAG = re.compile(r"^[0-9A-Fa-f]{8}$")
_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")
_STRING_VRS = frozenset(("AE", "AS", "CS", "DA", "DT", "LO", "LT", "SH", "ST", "TM", "UC", "UI", "UR", "UT"))
_BINARY_VRS = frozenset(("OB", "OD", "OF", "OL", "OV", "OW", "UN"))
# integer VRs and their ranges (PS3.5 6.2); IS, SV and UV may also come as strings (F.2.3.1)
INTEGER_RANGES: dict[str, tuple[int, int]] = {
    "IS": (-(2**31), 2**31 - 1), "SS": (-(2**15), 2**15 - 1), "US": (0, 2**16 - 1),
    "SL": (-(2**31), 2**31 - 1), "UL": (0, 2**32 - 1), "SV": (-(2**63), 2**63 - 1), "UV": (0, 2**64 - 1),
}
DECIMAL_VRS = frozenset(("DS", "FL", "FD"))
_FLOAT32_MAX = 3.4028234663852886e38
_PN_GROUPS = frozenset(("Alphabetic", "Ideographic", "Phonetic"))
_MEMBERS = frozenset(("vr", "Value", "InlineBinary", "BulkDataURI"))
VRS = _STRING_VRS | _BINARY_VRS | frozenset(INTEGER_RANGES) | DECIMAL_VRS | {"AT", "PN", "SQ"}


class InvalidDataset(ValueError):
    """A request body that is not a valid DICOM JSON dataset."""


@dataclass(frozen=True)
class JsonLimits:
    """How big a dataset a client may send: sequence nesting and elements in all (nested included)."""

    max_depth: int = 16
    max_elements: int = 100_000

    @classmethod
    def of(cls, settings: Any) -> JsonLimits:
        """The limits set by ``settings`` (json_max_depth, json_max_elements)."""
        return cls(max_depth=settings.json_max_depth, max_elements=settings.json_max_elements)


DEFAULT_LIMITS = JsonLimits()
UNLIMITED = JsonLimits(max_depth=2**31, max_elements=2**62)  # datasets the adapters already checked


def loads(body: bytes | str) -> Any:
    """JSON text -> Python values, refusing what no DICOM JSON value can be: NaN and Infinity,
    numbers that overflow a double, invalid UTF-8, nesting deeper than the parser goes."""
    try:
        return json.loads(body, parse_constant=_no_constant, parse_float=_finite_float)
    except RecursionError:
        raise InvalidDataset("the JSON is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, the checks below
        raise InvalidDataset(f"the body is not valid JSON: {exc}") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number DICOM JSON can hold (finite numbers only)")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text} is not a finite number")
    return number


def validate(ds: Any, limits: JsonLimits = DEFAULT_LIMITS, where: str = "") -> JsonDataset:
    """Check that ``ds`` is a DICOM JSON dataset within ``limits``; return it with upper-case
    tags (items keyed like the top level, so that matching finds them)."""
    return _Walk(limits).dataset(ds, where, 0)


class _Walk:
    def __init__(self, limits: JsonLimits):
        self.limits = limits
        self.elements = 0

    def dataset(self, ds: Any, where: str, depth: int) -> JsonDataset:
        if not isinstance(ds, dict):
            raise InvalidDataset(f"{where or 'dataset'}: expected a JSON object, got {_kind(ds)}")
        if depth > self.limits.max_depth:
            raise InvalidDataset(f"{where}: sequences nest deeper than {self.limits.max_depth} levels")
        self.elements += len(ds)
        if self.elements > self.limits.max_elements:
            raise InvalidDataset(f"the dataset holds more than {self.limits.max_elements} elements")
        return {key.upper(): self.element(f"{where}{key}", key, elem, depth) for key, elem in ds.items()}

    def element(self, path: str, key: Any, elem: Any, depth: int) -> dict[str, Any]:
        if not isinstance(key, str) or not _HEX_TAG.match(key):
            raise InvalidDataset(f"{_printable(path)}: attribute keys must be 8 hexadecimal digits")
        if not isinstance(elem, dict):
            raise InvalidDataset(f"{path}: element must be a JSON object with a 'vr'")
        unknown = set(elem) - _MEMBERS
        if unknown:
            raise InvalidDataset(f"{path}: unknown member(s) {_printable(', '.join(sorted(unknown)))}; "
                                 "an element holds vr and one of Value, InlineBinary, BulkDataURI")
        vr = elem.get("vr")
        if not isinstance(vr, str) or vr not in VRS:
            raise InvalidDataset(f"{path}: missing or unknown vr {_printable(vr)}")
        _check_dictionary_vr(path, key, vr)
        if sum(m in elem for m in ("Value", "InlineBinary", "BulkDataURI")) > 1:
            raise InvalidDataset(f"{path}: only one of Value, InlineBinary and BulkDataURI may be given")
        if "BulkDataURI" in elem:
            _text(path, elem["BulkDataURI"], "BulkDataURI")
        if "InlineBinary" in elem:
            if vr not in _BINARY_VRS:
                raise InvalidDataset(f"{path}: InlineBinary is only for the binary VRs, not {vr}")
            _base64(path, elem["InlineBinary"])
        if "Value" not in elem:
            return elem
        if vr in _BINARY_VRS:
            raise InvalidDataset(f"{path}: VR {vr} has no Value; send InlineBinary (base64) or BulkDataURI")
        vals = elem["Value"]
        if not isinstance(vals, list):
            raise InvalidDataset(f"{path}: 'Value' must be an array")
        if vr == "SQ":
            items = [self.dataset(item, f"{path}[{i}].", depth + 1) for i, item in enumerate(vals)]
            return {**elem, "Value": items}
        for v in vals:
            if v is not None:
                _value(path, vr, v)
        return elem


def _check_dictionary_vr(path: str, key: str, vr: str) -> None:
    """A public attribute's vr is one its dictionary entry allows (or UN)."""
    if vr == "UN" or int(key[:4], 16) % 2:
        return
    try:
        allowed = dictionary_VR(int(key, 16)).split(" or ")
    except KeyError:
        return
    if vr not in allowed:
        raise InvalidDataset(f"{path}: vr {vr} is not the VR of this attribute ({' or '.join(allowed)})")


def _value(path: str, vr: str, v: Any) -> None:
    if vr in _STRING_VRS:
        _text(path, v, f"a {vr} value")
    elif vr == "AT":
        if not isinstance(v, str) or not _HEX_TAG.match(v):
            raise InvalidDataset(f"{path}: an AT value is a tag of 8 hexadecimal digits")
    elif vr == "PN":
        if not isinstance(v, dict):
            raise InvalidDataset(f"{path}: PN values must be objects with 'Alphabetic'")
        for group, name in v.items():
            if group not in _PN_GROUPS:
                raise InvalidDataset(f"{path}: PN member {_printable(group)}; expected Alphabetic, "
                                     "Ideographic or Phonetic")
            if name is not None:
                _text(path, name, f"PN {group}")
    elif vr in INTEGER_RANGES:
        check_integer(vr, v, path)
    elif vr in DECIMAL_VRS:
        check_decimal(vr, v, path)


def number_kind(vr: str) -> str:
    """What a value of a numeric VR must be, for messages."""
    if vr in INTEGER_RANGES:
        low, high = INTEGER_RANGES[vr]
        return f"a {vr} number (an integer from {low} to {high})"
    return f"a {vr} number (a finite decimal number)"


def check_integer(vr: str, v: Any, path: str) -> int:
    """An integer VR's value (IS, SV, UV also as a string): an integer within the VR's range."""
    low, high = INTEGER_RANGES[vr]
    number: Any = v
    if isinstance(v, str) and vr in ("IS", "SV", "UV"):
        _text(path, v, f"a {vr} value")
        try:
            number = int(v.strip())
        except ValueError:
            number = None
    if not isinstance(number, int) or isinstance(number, bool) or not low <= number <= high:
        raise InvalidDataset(f"{path}: {_printable(v)} is not {number_kind(vr)}")
    return number


def check_decimal(vr: str, v: Any, path: str) -> float:
    """A DS / FL / FD value (DS also as a string): a finite number (FL: within single precision)."""
    number: Any = v
    if isinstance(v, str) and vr == "DS":
        _text(path, v, "a DS value")
        try:
            number = float(v.strip())
        except ValueError:
            number = None
    if not isinstance(number, (int, float)) or isinstance(number, bool) or not math.isfinite(number) or (
            vr == "FL" and abs(number) > _FLOAT32_MAX):
        raise InvalidDataset(f"{path}: {_printable(v)} is not {number_kind(vr)}")
    return float(number)


def _text(path: str, v: Any, what: str) -> None:
    if not isinstance(v, str):
        raise InvalidDataset(f"{path}: {what} must be a string, not {_kind(v)}")
    bad = _BAD_TEXT.search(v)
    if bad:
        char = "a NUL character" if bad.group() == "\x00" else "a lone UTF-16 surrogate (invalid Unicode)"
        raise InvalidDataset(f"{path}: {what} holds {char}")


def _base64(path: str, v: Any) -> None:
    _text(path, v, "InlineBinary")
    try:
        binascii.a2b_base64(v.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError):
        raise InvalidDataset(f"{path}: InlineBinary is not base64") from None


def _kind(v: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null",
            int: "a number", float: "a number"}.get(type(v), type(v).__name__)


def _printable(v: Any) -> str:
    """``v`` for a message: repr, with NUL and surrogates escaped, cut to 64 characters."""
    text = repr(v)
    text = text.encode("ascii", "backslashreplace").decode("ascii")
    return text if len(text) <= 64 else text[:61] + "..."
