"""Apply the Alembic migrations in migrations/ to a database."""

from __future__ import annotations

import logging

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

from ..paths import migrations_dir

log = logging.getLogger(__name__)

# Serialises concurrent `serve` processes migrating the same database.
_LOCK_KEY = 0x5550_5301


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    return cfg


def scripts() -> ScriptDirectory:
    """The migrations in migrations/versions."""
    return ScriptDirectory.from_config(_config())


def head_revision() -> str | None:
    return scripts().get_current_head()


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Upgrade to ``revision`` (idempotent; safe when several processes start at once)."""

    def run(sync_conn) -> None:
        sync_conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_LOCK_KEY})")
        cfg = _config()
        cfg.attributes["connection"] = sync_conn
        command.upgrade(cfg, revision)

    async with engine.begin() as conn:
        await conn.run_sync(run)
    log.info("database schema at revision %s", head_revision() if revision == "head" else revision)


async def current_revision(engine: AsyncEngine) -> str | None:
    def run(sync_conn):
        return MigrationContext.configure(sync_conn).get_current_revision()

    async with engine.connect() as conn:
        return await conn.run_sync(run)
