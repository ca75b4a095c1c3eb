"""The one bridge from pynetdicom's handler threads to the server's asyncio loop."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

DEFAULT_TIMEOUT = 60.0


class Bridge:
    """Runs coroutines on ``loop`` from another thread and waits for their result.

    pynetdicom calls its event handlers in the association's thread; the services
    (database, rules, events) live on the server's loop. ``call`` must never be used
    from the loop's own thread (it would wait on itself).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float = DEFAULT_TIMEOUT):
        self.loop = loop
        self.timeout = timeout

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(self.timeout if timeout is None else timeout)
        except TimeoutError:
            future.cancel()
            raise
