"""Group commit: what concurrent callers submit while a transaction is running goes into the next
one, so that N requests cost one transaction and one commit (one WAL flush) instead of N.

There is no timer: a lone caller is served at once (its batch is itself); callers that arrive while
``in_flight`` batches are running wait and form the next batch. Two in flight by default: one
transaction's round trips to PostgreSQL overlap the other's work (with one, a loaded machine's
round trips left the others idle: STOW-RS from 4 clients took fewer commits but more time). A caller's results come back only after the
commit that made them durable. Failures:

- before the commit (a statement fails): the transaction rolls back; when several callers shared
  it, each caller's items run again alone, so that one caller's bad data fails only that caller,
  with its own exception;
- at the commit (the connection is lost): the outcome is unknown, nothing is retried, and every
  caller of the batch gets ``CommitFailed`` (its cause is the original error).

Batches run in their own tasks: a caller that is cancelled while it waits leaves the others' batch
alone (its own items may still commit).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

MAX_BATCH_ITEMS = 512  # items in one transaction (what queues beyond goes into the next one)
BATCHES_IN_FLIGHT = 2


class CommitFailed(RuntimeError):
    """The commit of a batch failed: whether it happened is unknown (``__cause__`` says why)."""


Work = Callable[[AsyncConnection, list[T]], Awaitable[list[R]]]


class GroupCommit(Generic[T, R]):
    """Runs ``work(conn, items)`` for the items of every caller waiting, in one transaction of
    ``engine()``; ``work`` returns one result per item, in order. With ``autocommit`` the work is
    ONE statement, its own transaction (no BEGIN and COMMIT round trips); it must be safe to run
    again when its outcome is unknown (a lost connection is then a failure before the commit)."""

    def __init__(self, engine: Callable[[], AsyncEngine], work: Work, max_items: int = MAX_BATCH_ITEMS,
                 in_flight: int = BATCHES_IN_FLIGHT, autocommit: bool = False):
        self._engine = engine
        self._autocommit = autocommit
        self._work = work
        self._max_items = max_items
        self._in_flight = in_flight
        self._waiting: list[tuple[list[T], asyncio.Future[list[R]]]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self, items: list[T]) -> list[R]:
        """``items``' results once the transaction holding them committed."""
        if not items:
            return []
        future: asyncio.Future[list[R]] = asyncio.get_running_loop().create_future()
        self._waiting.append((items, future))
        # each task takes what waits when it is free; a task that found nothing left is done at once
        # (its done-callback, which drops it from the set, runs later: count only running ones)
        if sum(not task.done() for task in self._tasks) < self._in_flight:
            task = asyncio.create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _drain(self) -> None:
        while self._waiting:
            batch, count = [], 0
            while self._waiting and (not batch or count + len(self._waiting[0][0]) <= self._max_items):
                submitted = self._waiting.pop(0)
                batch.append(submitted)
                count += len(submitted[0])
            try:
                await self._run_batch(batch)
            except BaseException as exc:
                for _, future in batch:
                    _settle(future, exc=exc)
                if not isinstance(exc, Exception):
                    raise

    async def _run_batch(self, batch: list[tuple[list[T], asyncio.Future[list[R]]]]) -> None:
        items = [item for submitted, _ in batch for item in submitted]
        try:
            results = await self._transaction(items)
        except CommitFailed as exc:
            for _, future in batch:
                _settle(future, exc=exc)
            return
        except Exception as exc:  # noqa: BLE001 - handed to the callers
            if len(batch) == 1:
                _settle(batch[0][1], exc=exc)
                return
            log.info("a group commit of %d requests failed before its commit (%s); each runs alone", len(batch), exc)
            for submitted, future in batch:  # one by one: only the request whose data fails fails
                try:
                    _settle(future, result=await self._transaction(submitted))
                except Exception as alone:  # noqa: BLE001 - handed to its caller
                    _settle(future, exc=alone)
            return
        start = 0
        for submitted, future in batch:
            _settle(future, result=results[start:start + len(submitted)])
            start += len(submitted)

    async def _transaction(self, items: list[T]) -> list[R]:
        async with self._engine().connect() as conn:
            if self._autocommit:
                return await self._work(await conn.execution_options(isolation_level="AUTOCOMMIT"), items)
            transaction = await conn.begin()
            try:
                results = await self._work(conn, items)
            except BaseException:
                try:
                    await transaction.rollback()
                except Exception as exc:  # noqa: BLE001 - the connection is gone: the first error tells why
                    log.debug("rollback failed: %s", exc)
                raise
            try:
                await transaction.commit()
            except Exception as exc:
                raise CommitFailed(f"the commit of {len(items)} item(s) failed: {exc}") from exc
            return results


def _settle(future: asyncio.Future, *, result: object = None, exc: BaseException | None = None) -> None:
    if future.done():  # its caller was cancelled
        return
    if exc is not None and not isinstance(exc, Exception):  # the batch task itself was cancelled
        future.cancel()
    elif exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)
