"""LISTEN for outbox NOTIFYs on a dedicated asyncpg connection and wake the dispatchers of
this process: a change committed by any process reaches the WebSockets open on every other."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import asyncpg
from sqlalchemy.engine import URL

from ..db.engine import asyncpg_dsn
from .outbox import CHANNEL
from .tasks import cancel, wait_or_timeout

log = logging.getLogger(__name__)

APPLICATION_NAME = "ups-server-events-listen"


class Notifier:
    def __init__(self, url: URL, wake: Callable[[str | None], None]):
        self.dsn = asyncpg_dsn(url)
        self.wake = wake
        self._task: asyncio.Task | None = None
        self.listening = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            conn = None
            lost = asyncio.Event()
            try:
                conn = await asyncpg.connect(self.dsn, server_settings={"application_name": APPLICATION_NAME})
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(CHANNEL, lambda _conn, _pid, _channel, payload: self.wake(payload))
                self.listening.set()
                self.wake(None)  # catch up on anything committed while not listening
                while not lost.is_set() and not conn.is_closed():
                    if not await wait_or_timeout(lost, 10):
                        await conn.execute("SELECT 1")  # notice a dead connection
                log.warning("event LISTEN connection closed; reconnecting")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("event LISTEN connection lost (%s); reconnecting", exc, exc_info=True)
            finally:
                self.listening.clear()
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close(timeout=2)
            await asyncio.sleep(1)
