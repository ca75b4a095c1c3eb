"""The async engine and the database lifecycle (embedded or external PostgreSQL)."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ..dicom import jsontext
from .embedded import EmbeddedPostgres

log = logging.getLogger(__name__)


def engine_url(url: str) -> str:
    """A PostgreSQL URL as SQLAlchemy's asyncpg dialect takes it. ``postgresql://`` gets the
    driver; libpq's multi-host forms (``postgresql://u:p@db1:5432,db2:5432/ups?target_session_attrs=
    read-write``, or ``?host=db1,db2``) become one ``host=name:port`` query value per host, with
    port 5432 where none is given. asyncpg tries the hosts in order and, with
    ``target_session_attrs=read-write``, keeps the first that is not read-only (a Patroni
    failover: the new primary)."""
    if url.startswith("postgresql://"):
        url = "postgresql+asyncpg://" + url[len("postgresql://"):]
    scheme, _, rest = url.partition("://")
    netloc, _, tail = rest.partition("/")
    userinfo, at, netloc_hosts = netloc.rpartition("@")
    path, _, query = tail.partition("?")
    params = parse_qsl(query, keep_blank_values=True)
    hosts = [h for k, v in params if k == "host" for h in v.split(",")]
    hosts += netloc_hosts.split(",") if netloc_hosts else []
    if len(hosts) < 2:
        return url
    hosts = [h if re.search(r":\d+$", h) else f"{h}:5432" for h in hosts]
    query = urlencode([(k, v) for k, v in params if k != "host"] + [("host", h) for h in hosts], safe="/:,")
    return f"{scheme}://{userinfo}{at}/{path}?{query}"


def asyncpg_dsn(url: URL) -> str:
    """The engine's URL as a DSN for ``asyncpg.connect`` (several hosts: one comma list of hosts
    and one of ports, which asyncpg parses; it keeps only the last of repeated ``host`` values)."""
    hosts = url.query.get("host")
    if isinstance(hosts, tuple) and len(hosts) > 1:
        names, ports = zip(*(h.rsplit(":", 1) for h in hosts), strict=True)
        url = url.update_query_dict({"host": ",".join(names), "port": ",".join(ports)})
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def make_engine(url: str, pool_size: int = 20) -> AsyncEngine:
    """At most ``2 * pool_size`` connections, as many kept open once opened: an overflow connection
    (beyond ``pool_size``) was closed when returned, so a burst of requests opened and closed
    PostgreSQL sessions, each a backend process started (py-spy: asyncpg connect and close under
    benchmarks/workers.py)."""
    # JSONB in and out through orjson (the stored datasets: the largest decode cost of a retrieve)
    return create_async_engine(make_url(engine_url(url)), pool_size=2 * pool_size, max_overflow=0,
                               pool_pre_ping=False, json_serializer=jsontext.dumps_text,
                               json_deserializer=jsontext.loads)


def autocommit(engine: AsyncEngine) -> AsyncEngine:
    """``engine`` (its pool) with each statement committing by itself: a read of one statement is one
    round trip, not BEGIN, the statement and ROLLBACK. (asyncpg's driver sends nothing for the
    isolation level, set on checkout and reset on return to the pool.) Under READ COMMITTED, the
    level every connection runs at, the statements of one transaction see no more of one snapshot
    than separate statements do: a read of several statements gains nothing from a transaction."""
    return engine.execution_options(isolation_level="AUTOCOMMIT")


class Database:
    """Owns the engine, and the embedded PostgreSQL when no URL is given."""

    def __init__(self, url: str | None, data_dir: Path, pool_size: int = 20):
        self._embedded = None if url else EmbeddedPostgres(data_dir)
        self._url = url
        self._pool_size = pool_size
        self.engine: AsyncEngine | None = None

    @property
    def embedded(self) -> EmbeddedPostgres | None:
        """The embedded PostgreSQL, when no URL was given."""
        return self._embedded

    @property
    def url(self) -> str:
        assert self._url is not None, "database not started"
        return self._url

    def start(self) -> AsyncEngine:
        """Blocking: start the embedded server if needed and create the engine."""
        if self._embedded is not None:
            self._url = self._embedded.start()
        self.engine = make_engine(self.url, self._pool_size)
        return self.engine

    async def dispose(self) -> None:
        if self.engine is not None:
            await self.engine.dispose()

    def stop(self) -> None:
        """Blocking: stop the embedded server (a no-op for an external one)."""
        if self._embedded is not None:
            self._embedded.stop()
