"""The background tasks of the event machinery: a dispatch loop woken by an event, and stopping."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from ..db.faults import database_unavailable

log = logging.getLogger(__name__)

CANCEL_RETRY_SECONDS = 1.0


async def run_when_woken(wake: asyncio.Event, step: Callable[[], Awaitable[None]], poll_seconds: float,
                         what: str) -> None:
    """Run ``step`` whenever ``wake`` is set, and at least every ``poll_seconds``; a failing
    step is logged and run again a second later."""
    while True:
        await wait_or_timeout(wake, poll_seconds)
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


async def wait_or_timeout(event: asyncio.Event, seconds: float) -> bool:
    """Wait until ``event`` is set or ``seconds`` have passed; True if it is set.

    Not ``asyncio.wait_for``: on Python 3.11 it swallows a cancellation that arrives as the awaited
    event is set (it returns the result instead), so a loop around it outlives ``cancel()``."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
    return event.is_set()


async def cancel(*tasks: asyncio.Task | None) -> None:
    """Cancel the tasks and wait until they have ended (what they raise is not re-raised).

    A task that swallows its cancellation (a library catching it) is cancelled again, each second,
    with a warning naming it, rather than waited for forever."""
    running = [task for task in tasks if task is not None]
    for task in running:
        task.cancel()
    for task in running:
        while not task.done():
            await asyncio.wait([task], timeout=CANCEL_RETRY_SECONDS)
            if not task.done():
                log.warning("task %s did not end when cancelled; cancelling it again", task.get_name())
                task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            task.result()
