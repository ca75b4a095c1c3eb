"""Supervision of the embedded PostgreSQL: when its postmaster dies (killed, crashed), it is started
again (PostgreSQL runs crash recovery from its WAL) and the engine's pooled connections to the
dead server are dropped, without a person and without restarting ups-server. Meanwhile requests
get 503 + Retry-After (``db.faults``)."""

from __future__ import annotations

import asyncio
import logging

from ..events.tasks import cancel
from .engine import Database

log = logging.getLogger(__name__)

CHECK_SECONDS = 1.0


class EmbeddedSupervisor:
    """A server component watching ``database``'s embedded PostgreSQL."""

    def __init__(self, database: Database, check_seconds: float = CHECK_SECONDS):
        assert database.embedded is not None
        self.database = database
        self.embedded = database.embedded
        self.check_seconds = check_seconds
        self._task: asyncio.Task | None = None
        self.restarts = 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._watch())

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.check_seconds)
            if await asyncio.to_thread(self.embedded.running):
                continue
            log.warning("embedded PostgreSQL in %s is not running: starting it again", self.embedded.pgdata)
            try:
                await asyncio.to_thread(self.embedded.restart)
            except Exception:
                log.exception("embedded PostgreSQL did not start; trying again")
                continue
            if self.database.engine is not None:
                await self.database.engine.dispose()  # connections to the dead server
            self.restarts += 1
            log.warning("embedded PostgreSQL started again after crash recovery (restart %d)", self.restarts)
