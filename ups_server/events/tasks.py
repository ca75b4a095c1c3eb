"""The background tasks of the event machinery: a dispatch loop woken by an event, and stopping."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from ..db.faults import database_unavailable

log = logging.getLogger(__name__)


async def run_when_woken(wake: asyncio.Event, step: Callable[[], Awaitable[None]], poll_seconds: float,
                         what: str) -> None:
    """Run ``step`` whenever ``wake`` is set, and at least every ``poll_seconds``; a failing
    step is logged and run again a second later."""
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), poll_seconds)
        wake.clear()
        try:
            await step()
        except Exception as exc:
            if database_unavailable(exc):
                log.warning("%s: the database is unavailable; retrying", what)
            else:
                log.exception("%s failed; retrying", what)
            await asyncio.sleep(1)
            wake.set()


async def cancel(*tasks: asyncio.Task | None) -> None:
    """Cancel the tasks and wait until they have ended (what they raise is not re-raised)."""
    running = [task for task in tasks if task is not None]
    for task in running:
        task.cancel()
    for task in running:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
