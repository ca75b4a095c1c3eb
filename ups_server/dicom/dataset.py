"""DICOM JSON (PS3.18 F.2) datasets: tag lookup, value access, pydicom conversion (validation of
what arrives: ``dicom.validation``).

Workitems are kept as DICOM JSON dicts (``{"00741000": {"vr": "CS", "Value": ["SCHEDULED"]}}``)
from the wire to the JSONB column and back; pydicom is used only at the DIMSE edge.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from pydicom import Dataset
from pydicom.datadict import dictionary_VR, tag_for_keyword

from .validation import InvalidDataset, validate  # noqa: F401 - checking what arrives lives there

JsonDataset = dict[str, Any]

_HEX_TAG = re.compile(r"^[0-9A-Fa-f]{8}$")


def tag_of(name: str) -> str:
    """``'PatientID'`` or ``'00100020'`` -> ``'00100020'``; ValueError for an unknown name."""
    if _HEX_TAG.match(name):
        return name.upper()
    tag = tag_for_keyword(name)
    if tag is None:
        raise ValueError(f"unknown attribute {name!r}")
    return f"{tag:08X}"


@functools.lru_cache(maxsize=4096)
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


def to_pydicom(ds: JsonDataset) -> Dataset:
    return Dataset.from_json(ds)


def from_pydicom(ds: Dataset) -> JsonDataset:
    out = ds.to_json_dict(bulk_data_threshold=10**9, bulk_data_element_handler=None)
    return {k.upper(): v for k, v in out.items()}
