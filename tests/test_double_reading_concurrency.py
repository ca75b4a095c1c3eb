"""Races: many studies whose two reads complete at the same moment, and parallel stores of
one study over several connections."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from ups_server.db.tables import instances, workitems

from .dicom_instances import instance, multipart, part10, uid
from .reading_flow import claim, complete, read_uid, referenced_sops, stow, workitem

STUDIES = 200


async def _gather_limited(coros, limit: int = 50):
    sem = asyncio.Semaphore(limit)

    async def run(c):
        async with sem:
            return await c

    return await asyncio.gather(*(run(c) for c in coros))


async def test_200_studies_complete_concurrently_give_200_arbitrations(http, server):
    studies = [uid() for _ in range(STUDIES)]
    await _gather_limited([stow(http, [part10(instance(s))]) for s in studies])

    async def claim_ok(wi: str, reader: str) -> str:
        r, txn = await claim(http, wi, reader)
        assert r.status_code == 200, r.text
        return txn

    txns = await _gather_limited([claim_ok(read_uid(n, s), f"READER_{n}") for s in studies for n in (1, 2)])

    async def complete_ok(wi: str, txn: str, value: str) -> None:
        r = await complete(http, wi, txn, value)
        assert r.status_code == 200, r.text

    async def complete_pair(i: int, s: str) -> None:
        # the study's two completions race each other (and those of the other studies in flight)
        await asyncio.gather(complete_ok(read_uid(1, s), txns[2 * i], "NORMAL"),
                             complete_ok(read_uid(2, s), txns[2 * i + 1], "RECALL"))

    # 32 studies in flight at once: the race is per study, the client timeout stays far away
    await _gather_limited([complete_pair(i, s) for i, s in enumerate(studies)], limit=32)

    async with server.database.engine.connect() as conn:
        groups = dict((await conn.execute(
            select(workitems.c.read_group, func.count()).group_by(workitems.c.read_group))).all())
        arbitrations = set((await conn.execute(
            select(workitems.c.uid).where(workitems.c.read_group == "arbitration"))).scalars())
    assert groups == {"read": 2 * STUDIES, "arbitration": STUDIES}
    assert arbitrations == {read_uid(3, s) for s in studies}


async def test_four_parallel_stows_of_one_study(http, server):
    study = uid()
    batches = [[instance(study, series) for _ in range(5)] for series in (uid() for _ in range(4))]

    async def post(batch):
        body, ctype = multipart([part10(ds) for ds in batch])
        r = await http.post("/studies", content=body, headers={"Content-Type": ctype})
        assert r.status_code == 200, r.text

    await asyncio.gather(*(post(b) for b in batches))
    expected = sorted(ds.SOPInstanceUID for b in batches for ds in b)
    async with server.database.engine.connect() as conn:
        uids = sorted((await conn.execute(select(workitems.c.uid).where(workitems.c.study_uid == study))).scalars())
        stored = (await conn.execute(select(func.count()).select_from(instances))).scalar_one()
    assert uids == sorted([read_uid(1, study), read_uid(2, study)])
    assert stored == 20
    for n in (1, 2):
        assert sorted(referenced_sops(await workitem(http, read_uid(n, study)))) == expected


async def test_parallel_stores_through_the_ingest_service(server):
    """The C-STORE entry point, many instances of one study at once."""
    study = uid()
    datasets = [instance(study) for _ in range(12)]
    results = await asyncio.gather(*(server.ingest.store(ds, source_ae=f"SCU{i % 4}")
                                     for i, ds in enumerate(datasets)))
    assert all(r.stored for r in results)
    for n in (1, 2):
        ds = await server.ups.retrieve(read_uid(n, study))
        assert sorted(referenced_sops(ds)) == sorted(d.SOPInstanceUID for d in datasets)
