"""Telling a database outage from a bug: an outage is answered 503 + Retry-After (DIMSE: A700 /
0110 with a reason), a bug 500. ``can_connect`` opens a new connection, as ``/health`` must: a
pool of live connections says nothing about whether the server still accepts new ones."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import asyncpg
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from .engine import asyncpg_dsn

RETRY_AFTER_SECONDS = 5
CONNECT_TIMEOUT_SECONDS = 5

# asyncpg's errors of a server that is gone, refusing connections, or shutting down
_UNAVAILABLE = (
    ConnectionError,  # refused, reset, aborted
    asyncio.TimeoutError,
    PoolTimeout,
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08
    asyncpg.CannotConnectNowError,  # 57P03: starting up, shutting down, in recovery
    asyncpg.AdminShutdownError,  # 57P01
    asyncpg.CrashShutdownError,  # 57P02
    asyncpg.ConnectionDoesNotExistError,
)


class DatabaseUnavailable(Exception):
    """Raised where a caller must give up because the database cannot be reached."""


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [e.__cause__, e.__context__, getattr(e, "orig", None)]


def database_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) says the database cannot be reached now."""
    for e in _chain(exc):
        if isinstance(e, (DatabaseUnavailable, *_UNAVAILABLE)):
            return True
        if isinstance(e, OSError) and _raised_in_asyncpg(e):  # e.g. the socket file is gone
            return True
        if isinstance(e, DBAPIError) and e.connection_invalidated:
            return True
    return False


def _raised_in_asyncpg(exc: BaseException) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        if "/asyncpg/" in tb.tb_frame.f_code.co_filename:
            return True
        tb = tb.tb_next
    return False


async def can_connect(url: URL) -> bool:
    """Open (and close) a new connection to the database of ``url``, bypassing any pool."""
    try:  # several hosts: asyncpg_dsn gives the form asyncpg parses
        conn = await asyncpg.connect(asyncpg_dsn(url), timeout=CONNECT_TIMEOUT_SECONDS)
    except Exception as exc:
        if database_unavailable(exc) or isinstance(exc, asyncpg.PostgresError):  # e.g. too many clients
            return False
        raise
    await conn.close()
    return True
