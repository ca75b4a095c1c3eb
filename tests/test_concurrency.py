"""Races over real HTTP and real PostgreSQL: no double claim is possible (UPS-CHG-07, DESIGN.md)."""

from __future__ import annotations

import asyncio

from .ups_client import create, put_state, retrieve, value
from .workitems import DICOM_JSON, new_workitem

CLIENTS = 64


async def test_simultaneous_claims_of_one_workitem(http):
    # UPS-CHG-07 / UPS-STATE-04: exactly one claim wins; the others get C301 (400, another
    # Transaction UID holds it) or a conflict (409), never a server error.
    uid = await create(http)
    txns = [f"1.2.826.0.1.3680043.10.8.{i}" for i in range(1, CLIENTS + 1)]
    start = asyncio.Event()

    async def claim(txn: str):
        await start.wait()
        return txn, await put_state(http, uid, "IN PROGRESS", txn)

    tasks = [asyncio.create_task(claim(txn)) for txn in txns]
    await asyncio.sleep(0)
    start.set()
    results = await asyncio.gather(*tasks)

    statuses = [r.status_code for _, r in results]
    assert all(s < 500 for s in statuses), statuses
    winners = [txn for txn, r in results if r.status_code == 200]
    assert len(winners) == 1, statuses
    assert all(s in (400, 409) for s in statuses if s != 200), statuses
    # the winner's Transaction UID is the one recorded: it alone may complete the step
    assert value(await retrieve(http, uid), "00741000") == "IN PROGRESS"
    loser = next(txn for txn in txns if txn != winners[0])
    assert (await put_state(http, uid, "CANCELED", loser)).status_code == 400
    assert (await put_state(http, uid, "CANCELED", winners[0])).status_code == 200


async def test_drain_with_claim_next(http):
    # 500 workitems, 32 racing clients through POST /workitems/claim: each claimed exactly once
    total, clients = 500, 32
    uids = [f"1.2.826.0.1.3680043.10.9.{i}" for i in range(1, total + 1)]
    sem = asyncio.Semaphore(32)

    async def make(uid: str) -> None:
        async with sem:
            r = await http.post(f"/workitems?{uid}", json=new_workitem(), headers=DICOM_JSON)
            assert r.status_code == 201, r.text

    await asyncio.gather(*(make(uid) for uid in uids))

    async def worker(n: int) -> list[str]:
        mine = []
        while True:
            r = await http.post(f"/workitems/claim?requester=CLIENT{n}", headers=DICOM_JSON)
            assert r.status_code in (200, 204), r.text
            if r.status_code == 204:
                return mine
            ds = r.json()[0]
            assert value(ds, "00741000") == "IN PROGRESS"
            assert value(ds, "00081195")  # the claimer learns its Transaction UID
            mine.append(value(ds, "00080018"))

    claimed = [uid for mine in await asyncio.gather(*(worker(n) for n in range(clients))) for uid in mine]
    assert len(claimed) == len(set(claimed)), "a workitem was claimed twice"
    assert sorted(claimed) == sorted(uids)
    r = await http.get("/workitems", params={"ProcedureStepState": "SCHEDULED"}, headers=DICOM_JSON)
    assert r.status_code == 204
