"""Workitem datasets and request helpers shared by the tests."""

from __future__ import annotations

from typing import Any

DICOM_JSON = {"Content-Type": "application/dicom+json", "Accept": "application/dicom+json"}


def el(vr: str, *values: Any) -> dict[str, Any]:
    if not values:
        return {"vr": vr}
    if vr == "PN":
        values = tuple({"Alphabetic": v} for v in values)
    return {"vr": vr, "Value": list(values)}


def code(value: str, scheme: str = "99LOCAL", meaning: str = "code") -> dict[str, Any]:
    return {"00080100": el("SH", value), "00080102": el("SH", scheme), "00080104": el("LO", meaning)}


def new_workitem(**overrides: Any) -> dict[str, Any]:
    """A minimal valid N-CREATE dataset (UPS-CREATE-02)."""
    ds = {
        "00741000": el("CS", "SCHEDULED"),
        "00741200": el("CS", "MEDIUM"),
        "00741204": el("LO", "Read"),
        "00404005": el("DT", "20261123100000"),
        "00404041": el("CS", "READY"),
        "00100010": el("PN", "Doe^Jane"),
        "00100020": el("LO", "PAT-1"),
    }
    ds.update(overrides)
    return ds


def state_change(state: str, txn: str | None) -> dict[str, Any]:
    ds = {"00741000": el("CS", state)}
    if txn:
        ds["00081195"] = el("UI", txn)
    return ds


def performed_procedure() -> dict[str, Any]:
    """An N-SET dataset meeting the COMPLETED final-state requirements (UPS-FINAL-01)."""
    return {
        "00741216": {"vr": "SQ", "Value": [{
            "00404028": {"vr": "SQ", "Value": [code("STATION1")]},
            "00404050": el("DT", "20261123100500"),
            "00404019": {"vr": "SQ", "Value": [code("READ")]},
            "00404051": el("DT", "20261123101000"),
            "00404033": {"vr": "SQ"},  # Output Information Sequence present and empty (UPS-FINAL-06)
        }]}
    }
