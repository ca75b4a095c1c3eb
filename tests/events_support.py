"""Shared steps of the subscription / event tests: workitem operations over UPS-RS and a look
at the subscription state rows (PS3.4 Table CC.2.3-2)."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select

from ups_server.db.tables import global_subscriptions, subscriptions
from ups_server.server import Server

from .workitems import DICOM_JSON, el, new_workitem, state_change

GLOBAL = "1.2.840.10008.5.1.4.34.5"
FILTERED = "1.2.840.10008.5.1.4.34.5.1"


def uid(n: int | str) -> str:
    return f"1.2.826.0.1.3680043.10.5.{n}"


def ws_url(base_url: str, aet: str) -> str:
    return base_url.replace("http://", "ws://", 1) + f"/subscribers/{aet}"


async def create(http: httpx.AsyncClient, workitem: str, **overrides: Any) -> None:
    r = await http.post(f"/workitems?{workitem}", json=new_workitem(**overrides), headers=DICOM_JSON)
    assert r.status_code == 201, r.text


async def claim(http: httpx.AsyncClient, workitem: str, txn: str, requester: str = "PERFORMER") -> None:
    r = await http.put(f"/workitems/{workitem}/state/{requester}", json=state_change("IN PROGRESS", txn),
                       headers=DICOM_JSON)
    assert r.status_code == 200, r.text


async def update(http: httpx.AsyncClient, workitem: str, ds: dict[str, Any], txn: str | None = None) -> None:
    query = f"?transaction-uid={txn}" if txn else ""
    r = await http.post(f"/workitems/{workitem}{query}", json=ds, headers=DICOM_JSON)
    assert r.status_code == 200, r.text


async def cancel(http: httpx.AsyncClient, workitem: str, requester: str, info: dict[str, Any] | None = None) -> None:
    r = await http.post(f"/workitems/{workitem}/cancelrequest/{requester}", json=info or {}, headers=DICOM_JSON)
    assert r.status_code == 202, r.text


async def subscribe(http: httpx.AsyncClient, target: str, aet: str, **params: str) -> httpx.Response:
    r = await http.post(f"/workitems/{target}/subscribers/{aet}", params=params)
    assert r.status_code == 201, r.text
    return r


async def subscribed(server: Server, aet: str) -> dict[str, bool]:
    """workitem UID -> deletion lock, for ``aet``."""
    async with server.database.engine.connect() as conn:
        rows = await conn.execute(select(subscriptions.c.workitem_uid, subscriptions.c.deletion_lock)
                                  .where(subscriptions.c.aet == aet))
        return {r.workitem_uid: r.deletion_lock for r in rows}


async def global_state(server: Server, aet: str) -> tuple[bool, bool] | None:
    """(deletion lock, filtered) of the AE's global subscription, None when it has none."""
    async with server.database.engine.connect() as conn:
        row = (await conn.execute(select(global_subscriptions).where(global_subscriptions.c.aet == aet))).first()
        return None if row is None else (row.deletion_lock, row.filtered)


def performers(name: str = "Reader^One", code_value: str = "R1") -> dict[str, Any]:
    return {"00404034": {"vr": "SQ", "Value": [{
        "00404009": {"vr": "SQ", "Value": [{"00080100": el("SH", code_value), "00080102": el("SH", "L"),
                                             "00080104": el("LO", name)}]},
        "00404037": el("PN", name),
        "00404036": el("LO", "Radiology"),
    }]}}


def progress(percent: str, description: str) -> dict[str, Any]:
    return {"00741002": {"vr": "SQ", "Value": [{
        "00741004": el("DS", percent),
        "00741006": el("ST", description),
    }]}}
