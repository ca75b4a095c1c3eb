"""Attribute paths (``Modality``, ``0020000D``, ``Seq.Attr``, ``Seq[0].Attr``) over DICOM JSON."""

from __future__ import annotations

import re
from typing import Any

from ..dicom.dataset import JsonDataset, tag_of, vr_of
from .model import Path

_STEP = re.compile(r"^([A-Za-z0-9]+)(?:\[(\d+)\])?$")


def parse_path(text: str) -> Path:
    """ValueError naming the bad step for an unknown keyword or a malformed step."""
    steps: list[tuple[str, int | None]] = []
    parts = text.split(".")
    for i, part in enumerate(parts):
        m = _STEP.match(part.strip())
        if not m:
            raise ValueError(f"{part!r} is not an attribute keyword or tag")
        tag = tag_of(m.group(1))
        if i < len(parts) - 1 and vr_of(tag) != "SQ":
            raise ValueError(f"{m.group(1)} is not a sequence, so {text!r} cannot go inside it")
        steps.append((tag, int(m.group(2)) if m.group(2) is not None else None))
    return tuple(steps)


def _scalar(value: Any) -> Any:
    if isinstance(value, dict) and "Alphabetic" in value:
        return value.get("Alphabetic")
    return value


def resolve(ds: JsonDataset, path: Path) -> list[Any]:
    """All values at ``path`` (items of the last step when it is a sequence); [] when absent."""
    current: list[JsonDataset] = [ds]
    for n, (tag, index) in enumerate(path):
        last = n == len(path) - 1
        found: list[Any] = []
        for item in current:
            elem = item.get(tag)
            if not isinstance(elem, dict):
                continue
            vals = elem.get("Value") or []
            if index is not None:
                vals = vals[index:index + 1]
            found.extend(vals)
        if last:
            return [_scalar(v) for v in found if v is not None and v != ""]
        current = [v for v in found if isinstance(v, dict)]
    return []


def first_value(ds: JsonDataset, path: Path) -> Any:
    vals = resolve(ds, path)
    return vals[0] if vals else None
