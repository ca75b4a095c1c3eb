"""Small async helpers driving UPS-RS over real HTTP for the tests (no server internals)."""

from __future__ import annotations

import itertools
from typing import Any

import httpx

from .workitems import DICOM_JSON, new_workitem, performed_procedure, state_change

_uids = itertools.count(1)
ROOT = "1.2.826.0.1.3680043.10.3"


def new_uid() -> str:
    return f"{ROOT}.{next(_uids)}"


async def create(http: httpx.AsyncClient, uid: str | None = None, **overrides: Any) -> str:
    uid = uid or new_uid()
    r = await http.post(f"/workitems?workitem={uid}", json=new_workitem(**overrides), headers=DICOM_JSON)
    assert r.status_code == 201, r.text
    return uid


async def put_state(http: httpx.AsyncClient, uid: str, state: str, txn: str | None) -> httpx.Response:
    return await http.put(f"/workitems/{uid}/state", json=state_change(state, txn), headers=DICOM_JSON)


async def claim(http: httpx.AsyncClient, uid: str, txn: str) -> None:
    r = await put_state(http, uid, "IN PROGRESS", txn)
    assert r.status_code == 200, r.text


async def update(http: httpx.AsyncClient, uid: str, dataset: dict, txn: str | None = None) -> httpx.Response:
    url = f"/workitems/{uid}" + (f"?transaction-uid={txn}" if txn else "")
    return await http.post(url, json=dataset, headers=DICOM_JSON)


async def in_state(http: httpx.AsyncClient, state: str, txn: str, **overrides: Any) -> str:
    """A new workitem brought to ``state`` through the API; ``txn`` is its Transaction UID."""
    uid = await create(http, **overrides)
    if state == "SCHEDULED":
        return uid
    await claim(http, uid, txn)
    r = await update(http, uid, performed_procedure(), txn)
    assert r.status_code == 200, r.text
    if state in ("COMPLETED", "CANCELED"):
        r = await put_state(http, uid, state, txn)
        assert r.status_code == 200, r.text
    return uid


async def retrieve(http: httpx.AsyncClient, uid: str) -> dict:
    r = await http.get(f"/workitems/{uid}", headers=DICOM_JSON)
    assert r.status_code == 200, r.text
    return r.json()[0]


def value(ds: dict, tag: str) -> Any:
    vals = ds.get(tag, {}).get("Value") or [None]
    v = vals[0]
    return v.get("Alphabetic") if isinstance(v, dict) and ds[tag]["vr"] == "PN" else v


def warning_text(r: httpx.Response) -> str | None:
    """The text of a ``299 <service>: <text>`` Warning header, or None."""
    header = r.headers.get("warning")
    if header is None:
        return None
    assert header.startswith("299 "), header
    return header.split(": ", 1)[1]
