"""Housekeeping: purge COMPLETED / CANCELED workitems after their delays unless a deletion lock
holds them (UPS-SUB-11, dcm4chee UPSDeleteScheduler), and prune the outbox past the replay
window, and run the ``jobs`` others add (orphan objects of the blob store). Every process runs it;
the statements are idempotent."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy import and_, delete, exists, func, literal_column
from sqlalchemy.ext.asyncio import AsyncEngine

from ..db.tables import cancel_requests, subscriptions, workitems
from ..ups.attributes import CANCELED, COMPLETED
from . import outbox
from .tasks import cancel

log = logging.getLogger(__name__)


async def purge_workitems(engine: AsyncEngine, completed_after: int, canceled_after: int) -> list[str]:
    """Delete final workitems older than their delay (negative delay: never) without a lock."""
    purged: list[str] = []
    for state, after in ((COMPLETED, completed_after), (CANCELED, canceled_after)):
        if after < 0:
            continue
        locked = exists().where(and_(subscriptions.c.workitem_uid == workitems.c.uid, subscriptions.c.deletion_lock))
        older = workitems.c.updated_at <= func.now() - literal_column("interval '1 second'") * float(after)
        async with engine.begin() as conn:
            uids = (await conn.execute(delete(workitems).where(workitems.c.state == state, older, ~locked)
                                       .returning(workitems.c.uid))).scalars().all()
            if uids:
                await conn.execute(delete(cancel_requests).where(cancel_requests.c.workitem_uid.in_(uids)))
        purged.extend(uids)
    if purged:
        log.info("purged %d final workitems", len(purged))
    return purged


class Housekeeper:
    def __init__(self, engine: AsyncEngine, interval: int, completed_after: int, canceled_after: int,
                 replay_seconds: int):
        self.engine = engine
        self.interval = interval
        self.completed_after = completed_after
        self.canceled_after = canceled_after
        self.replay_seconds = replay_seconds
        self.jobs: list[Callable[[], Awaitable[object]]] = []  # more work of each run (orphan objects)
        self._task: asyncio.Task | None = None

    async def run_once(self) -> list[str]:
        purged = await purge_workitems(self.engine, self.completed_after, self.canceled_after)
        async with self.engine.begin() as conn:
            await outbox.prune(conn, self.replay_seconds)
        for job in self.jobs:
            await job()
        return purged

    def start(self) -> None:
        if self.interval > 0:
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("housekeeping failed; trying again in %ds", self.interval)
