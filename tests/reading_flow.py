"""Reader actions over real HTTP for the double-reading tests: claim, report a result, complete."""

from __future__ import annotations

from typing import Any

from ups_server.dicom.uids import name_based_uid

from .dicom_instances import multipart, uid
from .workitems import DICOM_JSON, code, el, state_change

INPUT_INFO, REF_SOP, SOP_UID = "00404021", "00081199", "00081155"


def read_uid(n: int, study: str) -> str:
    return name_based_uid(f"{n}-{study}")


async def stow(http, parts: list[bytes], path: str = "/studies"):
    body, ctype = multipart(parts)
    r = await http.post(path, content=body, headers={"Content-Type": ctype, "Accept": "application/dicom+json"})
    assert r.status_code == 200, r.text
    return r


async def workitem(http, wi: str) -> dict[str, Any] | None:
    r = await http.get(f"/workitems/{wi}", headers=DICOM_JSON)
    if r.status_code == 404:
        return None
    assert r.status_code == 200, r.text
    return r.json()[0]


async def claim(http, wi: str, reader: str):
    """PUT .../state/{reader} to IN PROGRESS; the response and the Transaction UID used."""
    txn = uid()
    r = await http.put(f"/workitems/{wi}/state/{reader}", json=state_change("IN PROGRESS", txn), headers=DICOM_JSON)
    return r, txn


def result(value: str, outputs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """An N-SET dataset carrying a read's coded result (and output references) that meets the
    COMPLETED final-state requirements."""
    performed: dict[str, Any] = {
        "00404028": {"vr": "SQ", "Value": [code("WORKSTATION")]},
        "00404050": el("DT", "20261123100500"),
        "00404019": {"vr": "SQ", "Value": [code(value, "99READ", value)]},
        "00404051": el("DT", "20261123101000"),
        "00404033": {"vr": "SQ", "Value": outputs} if outputs else {"vr": "SQ"},
    }
    return {"00741216": {"vr": "SQ", "Value": [performed]}}


async def complete(http, wi: str, txn: str, value: str, outputs: list[dict[str, Any]] | None = None):
    r = await http.post(f"/workitems/{wi}?transaction-uid={txn}", json=result(value, outputs), headers=DICOM_JSON)
    assert r.status_code == 200, r.text
    return await http.put(f"/workitems/{wi}/state", json=state_change("COMPLETED", txn), headers=DICOM_JSON)


async def read(http, wi: str, reader: str, value: str, outputs: list[dict[str, Any]] | None = None) -> None:
    r, txn = await claim(http, wi, reader)
    assert r.status_code == 200, r.text
    r = await complete(http, wi, txn, value, outputs)
    assert r.status_code == 200, r.text


def referenced_sops(ds: dict[str, Any]) -> list[str]:
    return [ref[SOP_UID]["Value"][0] for item in ds.get(INPUT_INFO, {}).get("Value", [])
            for ref in item.get(REF_SOP, {}).get("Value", [])]


async def study_workitems(server, study: str) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from ups_server.db.tables import workitems

    async with server.database.engine.connect() as conn:
        rows = await conn.execute(select(workitems.c.uid, workitems.c.state, workitems.c.read_group,
                                         workitems.c.reader).where(workitems.c.study_uid == study))
        return [dict(r) for r in rows.mappings()]
