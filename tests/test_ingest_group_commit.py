"""Group commit (ingest/group_commit.py) on a real PostgreSQL: what callers submit while a batch
runs goes into the next transaction together; nobody is answered before the commit holding its
items; a bad caller fails alone; a failed commit fails its whole batch; and through the ingest
service, stores of many studies at once give each study exactly its two read workitems."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select, text

from ups_server.db.engine import make_engine
from ups_server.db.tables import workitems
from ups_server.ingest.group_commit import CommitFailed, GroupCommit

from .dicom_instances import instance, part10, uid
from .reading_flow import read_uid, referenced_sops

LOCK = 4242  # an advisory lock the test holds to keep the first batch from committing


@pytest.fixture
async def engine(server):
    async with server.database.engine.begin() as conn:
        await conn.execute(text("CREATE TABLE gc_items (item text PRIMARY KEY DEFERRABLE INITIALLY DEFERRED)"))
    return server.database.engine


async def _committed(engine) -> set[str]:
    async with engine.connect() as conn:
        return set((await conn.execute(text("SELECT item FROM gc_items"))).scalars())


def _group(engine, batches: list[list[str]], in_flight: int = 1) -> GroupCommit[str, str]:
    async def work(conn, items: list[str]) -> list[str]:
        batches.append(list(items))
        await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK})
        if "bad" in items:
            raise ValueError("bad item")
        await conn.execute(text("INSERT INTO gc_items SELECT unnest(CAST(:items AS text[]))"), {"items": items})
        return [item.upper() for item in items]

    return GroupCommit(lambda: engine, work, in_flight=in_flight)


async def _held_while(engine, group: GroupCommit, first: list[str], then: list[list[str]], batches: list):
    """Submit ``first`` and wait until its batch blocks on LOCK; submit ``then`` meanwhile; release."""
    holder_engine = make_engine(engine.url.render_as_string(hide_password=False), pool_size=1)
    async with holder_engine.connect() as holder:
        await holder.execute(text("SELECT pg_advisory_lock(:k)"), {"k": LOCK})
        tasks = [asyncio.create_task(group.run(first))]
        while not batches:
            await asyncio.sleep(0.01)
        tasks += [asyncio.create_task(group.run(items)) for items in then]
        await asyncio.sleep(0.2)
        assert not any(task.done() for task in tasks), "answered before the commit holding its items"
        await holder.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK})
    await holder_engine.dispose()
    return await asyncio.gather(*tasks, return_exceptions=True)


async def test_callers_arriving_during_a_batch_share_the_next_transaction(engine):
    batches: list[list[str]] = []
    results = await _held_while(engine, _group(engine, batches), ["a"], [["b", "c"], ["d"], ["e"]], batches)
    assert results == [["A"], ["B", "C"], ["D"], ["E"]]
    assert batches == [["a"], ["b", "c", "d", "e"]]
    assert await _committed(engine) == {"a", "b", "c", "d", "e"}


async def test_with_two_in_flight_a_second_caller_starts_at_once_and_later_ones_share_a_batch(engine):
    batches: list[list[str]] = []
    group = _group(engine, batches, in_flight=2)
    holder_engine = make_engine(engine.url.render_as_string(hide_password=False), pool_size=1)
    async with holder_engine.connect() as holder:
        await holder.execute(text("SELECT pg_advisory_lock(:k)"), {"k": LOCK})
        tasks = []
        for items in (["a"], ["b"]):  # each starts its own batch, both wait on the lock
            tasks.append(asyncio.create_task(group.run(items)))
            while len(batches) < len(tasks):
                await asyncio.sleep(0.01)
        tasks += [asyncio.create_task(group.run(items)) for items in (["c"], ["d", "e"])]
        await asyncio.sleep(0.2)
        assert not any(task.done() for task in tasks)
        await holder.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK})
    await holder_engine.dispose()
    assert await asyncio.gather(*tasks) == [["A"], ["B"], ["C"], ["D", "E"]]
    assert batches == [["a"], ["b"], ["c", "d", "e"]]
    assert await _committed(engine) == {"a", "b", "c", "d", "e"}


async def test_a_caller_whose_items_fail_fails_alone(engine):
    batches: list[list[str]] = []
    results = await _held_while(engine, _group(engine, batches), ["a"], [["b"], ["bad", "x"], ["c"]], batches)
    assert results[0] == ["A"] and results[1] == ["B"] and results[3] == ["C"]
    assert isinstance(results[2], ValueError)
    assert batches[1] == ["b", "bad", "x", "c"]  # shared, failed, then each caller alone
    assert batches[2:] == [["b"], ["bad", "x"], ["c"]]
    assert await _committed(engine) == {"a", "b", "c"}


async def test_a_failed_commit_fails_every_caller_of_its_batch_and_keeps_nothing(engine):
    batches: list[list[str]] = []
    # the duplicate key is found at COMMIT (the constraint is deferred): the whole batch fails
    results = await _held_while(engine, _group(engine, batches), ["a"], [["b"], ["dup", "dup"], ["c"]], batches)
    assert results[0] == ["A"]
    assert all(isinstance(r, CommitFailed) for r in results[1:])
    assert len(batches) == 2  # not run again: a commit that failed may have happened
    assert await _committed(engine) == {"a"}


async def test_concurrent_stores_of_many_studies_give_each_study_its_two_reads(server):
    studies = [uid() for _ in range(6)]
    load = [[instance(study=study, series=study + ".1") for _ in range(5)] for study in studies]
    calls = [server.ingest.store(part10(ds), source_ae="MODALITY") for study in load for ds in study[:3]]
    calls += [server.ingest.store_many([part10(ds) for ds in study[3:]], source_ae="MODALITY") for study in load]
    await asyncio.gather(*calls)
    async with server.database.engine.connect() as conn:
        rows = (await conn.execute(select(workitems.c.study_uid, workitems.c.uid, workitems.c.dataset))).all()
    assert len(rows) == 2 * len(studies)
    for study, datasets in zip(studies, load, strict=True):
        mine = [row for row in rows if row.study_uid == study]
        assert sorted(row.uid for row in mine) == sorted([read_uid(1, study), read_uid(2, study)])
        for row in mine:  # each read references every instance of its study, once
            assert sorted(referenced_sops(row.dataset)) == sorted(ds.SOPInstanceUID for ds in datasets)


@pytest.mark.parametrize("in_flight", [1, 2])
async def test_a_caller_arriving_as_the_last_batch_ends_is_served(engine, in_flight):
    """The batch task that answered the previous caller ends as that caller resumes: the next one
    must get a task of its own, not wait on the ending one."""
    batches: list[list[str]] = []
    group = _group(engine, batches, in_flight=in_flight)
    for item in ("a", "b", "c"):
        async with asyncio.timeout(30):  # in this task: no new task in between (as asyncio.wait_for makes)
            assert await group.run([item]) == [item.upper()]
    assert batches == [["a"], ["b"], ["c"]]


@pytest.mark.parametrize("autocommit", [False, True])
async def test_autocommit_work_runs_without_a_transaction_around_it(engine, autocommit):
    """``autocommit``: each statement of the work is its own transaction (the upload records: no
    BEGIN and COMMIT round trips); otherwise one transaction holds the work's statements."""
    async def work(conn, items: list[str]) -> list[object]:
        await conn.execute(text("INSERT INTO gc_items SELECT unnest(CAST(:items AS text[]))"), {"items": items})
        xid = (await conn.execute(text("SELECT pg_current_xact_id_if_assigned()"))).scalar()
        return [xid for _ in items]

    [xid] = await GroupCommit(lambda: engine, work, autocommit=autocommit).run([uid()])
    assert (xid is None) == autocommit  # the insert's transaction is over (autocommit), or still open
    assert len(await _committed(engine)) == 1
