"""Stopping the background tasks: ``cancel()`` ends them even when a cancellation is swallowed,
and ``run_when_woken`` does not swallow one that arrives as it is woken (Python 3.11's
``asyncio.wait_for`` does: the intermittent hang of the server fixture's teardown)."""

from __future__ import annotations

import asyncio

import pytest

from ups_server.events.tasks import cancel, run_when_woken

HANG_GUARD_SECONDS = 10  # not a timing assertion: a hang fails the test instead of the run


async def ended(task: asyncio.Task) -> bool:
    """Whether ``task`` ends by itself (``asyncio.wait`` does not cancel what it waits for, so the
    guard cannot end the task for it)."""
    done, _ = await asyncio.wait([task], timeout=HANG_GUARD_SECONDS)
    return task in done


async def _noop() -> None:
    return None


@pytest.mark.parametrize("steps", range(6))
async def test_a_cancellation_arriving_as_the_loop_is_woken_ends_it(steps):
    wake = asyncio.Event()
    task = asyncio.create_task(run_when_woken(wake, _noop, 3600, "test loop"))
    await asyncio.sleep(0.01)  # waiting for the wake
    wake.set()
    for _ in range(steps):  # let the wake get part of the way to the loop, then cancel
        await asyncio.sleep(0)
    task.cancel()
    assert await ended(task), "the loop swallowed its cancellation"
    assert task.cancelled()


async def test_cancel_ends_a_task_that_swallows_its_first_cancellation():
    swallowed = []

    async def stubborn() -> None:
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed.append(True)  # e.g. a library turning it into a result

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0.01)
    stopping = asyncio.create_task(cancel(task))
    assert await ended(stopping), "cancel() waited forever for a task that swallowed its cancellation"
    assert task.done() and swallowed == [True]
