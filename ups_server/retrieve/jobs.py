"""Retrieve jobs as rows of ``retrieve_jobs``: created by the HTTP API, taken by the worker.

A worker takes a due job with ``FOR UPDATE SKIP LOCKED`` and, in the same transaction, a
session advisory lock on it, held by its connection while the job runs: another process skips
the job, and a process that dies drops the lock with its connection, so a restarted (or any
other) server takes the job up again at once. Progress and outcome are written by short
transactions of their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, and_, cast, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..db.tables import retrieve_jobs

QUEUED, RUNNING, DONE, NOT_FOUND, FAILED = "queued", "running", "done", "not_found", "failed"
STATES = (QUEUED, RUNNING, DONE, NOT_FOUND, FAILED)
FINAL = (DONE, NOT_FOUND, FAILED)
# pg_advisory_lock(LOCK_CLASS, job id): the job runs on the connection that holds it
LOCK_CLASS = 0x5250_4A42


@dataclass
class Job:
    id: int
    state: str
    study_uid: str | None
    patient_id: str | None
    accession_number: str | None
    parent_id: int | None
    archive: str | None
    instances_expected: int | None
    instances_present_before: int | None
    instances_retrieved: int
    error: str | None
    attempts: int

    @property
    def is_lookup(self) -> bool:
        return self.study_uid is None


def _job(row: Any) -> Job:
    return Job(**{name: row._mapping[name] for name in Job.__dataclass_fields__})


def _lock_key(fn: Any, job_id: int) -> Any:
    return fn(cast(LOCK_CLASS, Integer), cast(job_id, Integer))


async def create_studies(engine: AsyncEngine, study_uids: list[str]) -> list[int]:
    async with engine.begin() as conn:
        rows = await conn.execute(retrieve_jobs.insert().returning(retrieve_jobs.c.id),
                                  [{"study_uid": uid} for uid in study_uids])
        return [r.id for r in rows]


async def create_lookup(engine: AsyncEngine, patient_id: str, accession_number: str) -> int:
    async with engine.begin() as conn:
        return (await conn.execute(retrieve_jobs.insert().values(
            patient_id=patient_id, accession_number=accession_number).returning(retrieve_jobs.c.id))).scalar_one()


async def get(engine: AsyncEngine, job_id: int) -> tuple[Job, list[int]] | None:
    """The job and the ids of the study jobs a lookup job queued."""
    async with engine.connect() as conn:
        row = (await conn.execute(select(retrieve_jobs).where(retrieve_jobs.c.id == job_id))).first()
        if row is None:
            return None
        children = (await conn.execute(select(retrieve_jobs.c.id).where(retrieve_jobs.c.parent_id == job_id)
                                       .order_by(retrieve_jobs.c.id))).scalars()
        return _job(row), list(children)


async def list_jobs(engine: AsyncEngine, state: str | None, limit: int) -> list[Job]:
    stmt = select(retrieve_jobs).order_by(retrieve_jobs.c.id.desc()).limit(limit)
    if state:
        stmt = stmt.where(retrieve_jobs.c.state == state)
    async with engine.connect() as conn:
        return [_job(r) for r in (await conn.execute(stmt))]


async def take(conn: AsyncConnection) -> Job | None:
    """On ``conn`` (kept open while the job runs): the oldest due job no other connection runs,
    now ``running``, its attempt counted, its advisory lock held by ``conn``; None when none is due."""
    not_running = text(
        "NOT EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.classid::bigint = :cls "
        "AND l.objid::bigint = retrieve_jobs.id AND l.objsubid = 2)").bindparams(cls=LOCK_CLASS)
    async with conn.begin():
        row = (await conn.execute(
            select(retrieve_jobs.c.id)
            .where(retrieve_jobs.c.state.in_((QUEUED, RUNNING)), retrieve_jobs.c.next_at <= func.now(),
                   not_running)
            .order_by(retrieve_jobs.c.next_at, retrieve_jobs.c.id).limit(1)
            .with_for_update(skip_locked=True))).first()
        if row is None:
            return None
        locked = (await conn.execute(select(_lock_key(func.pg_try_advisory_lock, row.id)))).scalar_one()
        if not locked:
            return None
        taken = (await conn.execute(
            update(retrieve_jobs).where(retrieve_jobs.c.id == row.id)
            .values(state=RUNNING, attempts=retrieve_jobs.c.attempts + 1, updated_at=func.now())
            .returning(*retrieve_jobs.c))).first()
    return _job(taken)


async def release(conn: AsyncConnection, job_id: int) -> None:
    await conn.execute(select(_lock_key(func.pg_advisory_unlock, job_id)))
    await conn.commit()


async def record(engine: AsyncEngine, job_id: int, **values: Any) -> None:
    """Progress or outcome of a job (only while it is not final)."""
    async with engine.begin() as conn:
        await conn.execute(update(retrieve_jobs)
                           .where(and_(retrieve_jobs.c.id == job_id, retrieve_jobs.c.state.not_in(FINAL)))
                           .values(updated_at=func.now(), **values))


async def retry_later(engine: AsyncEngine, job_id: int, seconds: float, error: str) -> None:
    await record(engine, job_id, state=QUEUED, error=error,
                 next_at=func.now() + func.make_interval(0, 0, 0, 0, 0, 0, seconds))


async def expand(engine: AsyncEngine, lookup_id: int, study_uids: list[str], archive: str) -> None:
    """A lookup job found ``study_uids`` in ``archive``: one study job each, and the lookup done."""
    async with engine.begin() as conn:
        if study_uids:
            await conn.execute(retrieve_jobs.insert(), [{"study_uid": uid, "parent_id": lookup_id}
                                                        for uid in study_uids])
        await conn.execute(update(retrieve_jobs).where(retrieve_jobs.c.id == lookup_id)
                           .values(state=DONE, archive=archive, error=None, updated_at=func.now()))
