"""Races between two ``ups-server serve`` processes on one PostgreSQL (DESIGN.md: several
processes may share a database): claims and completions stay exactly-once when the racing
requests go through different processes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import func, select

from ups_server.db.tables import workitems

from .dicom_instances import instance, part10, uid
from .event_clients import free_port
from .processes import serve, stop
from .reading_flow import claim, complete, read_uid, stow
from .ups_client import put_state, retrieve, value
from .workitems import DICOM_JSON, new_workitem


@pytest.fixture
async def two(settings, tmp_path) -> AsyncIterator[list[httpx.AsyncClient]]:
    """HTTP clients of two server processes sharing the test database."""
    ports = [free_port(), free_port()]
    processes = await asyncio.gather(*(asyncio.to_thread(serve, settings.database_url, tmp_path, p) for p in ports))
    clients = [httpx.AsyncClient(base_url=f"http://127.0.0.1:{p}/dicom-web", timeout=60) for p in ports]
    try:
        yield clients
    finally:
        for c in clients:
            await c.aclose()
        await asyncio.gather(*(asyncio.to_thread(stop, p) for p in processes))


async def test_one_claim_wins_across_processes(two):
    # UPS-STATE-04: 32 claims of one workitem, half through each process -> exactly one 200
    wi = "1.2.826.0.1.3680043.10.11.1"
    r = await two[0].post(f"/workitems?{wi}", json=new_workitem(), headers=DICOM_JSON)
    assert r.status_code == 201, r.text
    txns = [f"1.2.826.0.1.3680043.10.11.1.{i}" for i in range(32)]
    results = await asyncio.gather(*(put_state(two[i % 2], wi, "IN PROGRESS", t) for i, t in enumerate(txns)))
    statuses = [r.status_code for r in results]
    assert statuses.count(200) == 1 and all(s in (200, 400, 409) for s in statuses), statuses
    assert value(await retrieve(two[1], wi), "00741000") == "IN PROGRESS"


async def test_claim_next_drains_once_across_processes(two):
    total = 200
    uids = [f"1.2.826.0.1.3680043.10.12.{i}" for i in range(1, total + 1)]
    for batch in range(0, total, 25):
        await asyncio.gather(*(two[n % 2].post(f"/workitems?{u}", json=new_workitem(), headers=DICOM_JSON)
                               for n, u in enumerate(uids[batch:batch + 25])))

    async def worker(n: int) -> list[str]:
        http, mine = two[n % 2], []
        while True:
            r = await http.post(f"/workitems/claim?requester=CLIENT{n}", headers=DICOM_JSON)
            assert r.status_code in (200, 204), r.text
            if r.status_code == 204:
                return mine
            mine.append(value(r.json()[0], "00080018"))

    claimed = [u for mine in await asyncio.gather(*(worker(n) for n in range(16))) for u in mine]
    assert sorted(claimed) == sorted(uids)  # every workitem once, none twice


async def test_reads_completed_through_different_processes_give_one_arbitration(two, server):
    # exactly once: each study's two reads complete at the same moment, one through each process
    studies = [uid() for _ in range(20)]
    for s in studies:
        await stow(two[0], [part10(instance(s))])
    txns = {}
    for s in studies:
        for n in (1, 2):
            r, txns[(s, n)] = await claim(two[n - 1], read_uid(n, s), f"READER_{n}")
            assert r.status_code == 200, r.text
    results = await asyncio.gather(*(complete(two[n - 1], read_uid(n, s), txns[(s, n)], value_)
                                     for s in studies for n, value_ in ((1, "NORMAL"), (2, "RECALL"))))
    assert all(r.status_code == 200 for r in results), [r.text for r in results if r.status_code != 200]
    async with server.database.engine.connect() as conn:
        count = (await conn.execute(select(func.count()).select_from(workitems)
                                    .where(workitems.c.read_group == "arbitration"))).scalar_one()
    assert count == len(studies)
    for s in studies:
        assert (await two[1].get(f"/workitems/{read_uid(3, s)}", headers=DICOM_JSON)).status_code == 200
