"""DICOM JSON (PS3.18 F.2) datasets: tag lookup, value access, validation, pydicom conversion.

Workitems are kept as DICOM JSON dicts (``{"00741000": {"vr": "CS", "Value": ["SCHEDULED"]}}``)
from the wire to the JSONB column and back; pydicom is used only at the DIMSE edge.
"""

from __future__ import annotations

import re
from typing import Any

from pydicom import Dataset
from pydicom.datadict import dictionary_VR, tag_for_keyword

JsonDataset = dict[str, Any]

_HEX_TAG = re.compile(r"^[0-9A-Fa-f]{8}$")
_VRS = {
    "AE", "AS", "AT", "CS", "DA", "DS", "DT", "FL", "FD", "IS", "LO", "LT", "OB", "OD", "OF", "OL", "OV",
    "OW", "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UN", "UR", "US", "UT", "UV",
}


class InvalidDataset(ValueError):
    """A request body that is not a valid DICOM JSON dataset."""


def tag_of(name: str) -> str:
    """``'PatientID'`` or ``'00100020'`` -> ``'00100020'``; ValueError for an unknown name."""
    if _HEX_TAG.match(name):
        return name.upper()
    tag = tag_for_keyword(name)
    if tag is None:
        raise ValueError(f"unknown attribute {name!r}")
    return f"{tag:08X}"


def vr_of(tag: str) -> str:
    """The dictionary VR of a tag (``'UN'`` when unknown)."""
    try:
        vr = dictionary_VR(int(tag, 16))
    except KeyError:
        return "UN"
    return vr.split(" or ")[0]


def element(vr: str, *values: Any) -> dict[str, Any]:
    """A DICOM JSON element; no values -> an empty (zero-length) element."""
    if not values:
        return {"vr": vr}
    if vr == "PN":
        values = tuple(v if isinstance(v, dict) else {"Alphabetic": v} for v in values)
    return {"vr": vr, "Value": list(values)}


def values(ds: JsonDataset, tag: str) -> list[Any]:
    elem = ds.get(tag)
    if not elem:
        return []
    return elem.get("Value") or []


def first(ds: JsonDataset, tag: str, default: Any = None) -> Any:
    """The first value of ``tag`` (a PN as its Alphabetic string), or ``default``."""
    vals = values(ds, tag)
    if not vals:
        return default
    value = vals[0]
    if isinstance(value, dict) and ds[tag].get("vr") == "PN":
        return value.get("Alphabetic", default)
    return value


def items(ds: JsonDataset, tag: str) -> list[JsonDataset]:
    """The items of a sequence (empty list when absent or empty)."""
    return [v for v in values(ds, tag) if isinstance(v, dict)]


def has_value(ds: JsonDataset, tag: str) -> bool:
    vals = values(ds, tag)
    return any(v not in (None, "", {}) for v in vals)


def validate(ds: Any, where: str = "") -> JsonDataset:
    """Check that ``ds`` is a DICOM JSON dataset; raise InvalidDataset naming the fault."""
    if not isinstance(ds, dict):
        raise InvalidDataset(f"{where or 'dataset'}: expected a JSON object, got {type(ds).__name__}")
    out: JsonDataset = {}
    for key, elem in ds.items():
        path = f"{where}{key}"
        if not _HEX_TAG.match(key):
            raise InvalidDataset(f"{path}: attribute keys must be 8 hexadecimal digits")
        if not isinstance(elem, dict):
            raise InvalidDataset(f"{path}: element must be a JSON object with a 'vr'")
        vr = elem.get("vr")
        if vr not in _VRS:
            raise InvalidDataset(f"{path}: missing or unknown vr {vr!r}")
        if "Value" in elem:
            vals = elem["Value"]
            if not isinstance(vals, list):
                raise InvalidDataset(f"{path}: 'Value' must be an array")
            if vr == "SQ":  # items keyed like the top level (upper-case hex), so matching finds them
                elem = {**elem, "Value": [validate(item, f"{path}[{i}].") for i, item in enumerate(vals)]}
            elif vr == "PN":
                for v in vals:
                    if v is not None and not isinstance(v, dict):
                        raise InvalidDataset(f"{path}: PN values must be objects with 'Alphabetic'")
                    _check_text(path, *(v or {}).values())
            else:
                for v in vals:
                    if isinstance(v, (dict, list)):
                        raise InvalidDataset(f"{path}: values of VR {vr} must be strings or numbers")
                    _check_text(path, v)
        out[key.upper()] = elem
    return out


def _check_text(path: str, *texts: Any) -> None:
    if any(isinstance(text, str) and "\x00" in text for text in texts):
        raise InvalidDataset(f"{path}: a value holds a NUL character")


def to_pydicom(ds: JsonDataset) -> Dataset:
    return Dataset.from_json(ds)


def from_pydicom(ds: Dataset) -> JsonDataset:
    out = ds.to_json_dict(bulk_data_threshold=10**9, bulk_data_element_handler=None)
    return {k.upper(): v for k, v in out.items()}
