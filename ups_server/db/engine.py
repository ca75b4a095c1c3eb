"""The async engine and the database lifecycle (embedded or external PostgreSQL)."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from .embedded import EmbeddedPostgres

log = logging.getLogger(__name__)


def make_engine(url: str, pool_size: int = 20) -> AsyncEngine:
    if url.startswith("postgresql://"):
        url = "postgresql+asyncpg://" + url[len("postgresql://"):]
    return create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=False)


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
