"""Objects put in the blob store before their index row commits, and the orphans a crash leaves.

A store records its new keys in ``blob_uploads`` (committed; concurrent stores' records share one
commit, ``GroupCommit``) before it puts the objects; the store transaction deletes the records of
the objects it indexes (in its index statement, ``index.add_instances``), so that a record that
outlives the grace period names an object without a row (the process died, or the transaction
failed, between the put and the commit). Housekeeping deletes those objects (``remove_orphans``).
A study deletion records the keys of the rows it deletes in its transaction, then removes the
objects (``forget``): a crash in between leaves them to housekeeping too.

Race-free across processes: ``remove_orphans`` holds its records ``FOR UPDATE`` while it deletes
the objects; a store transaction that settles one of them waits, then finds it gone and rolls back
(``UploadLost``), so no index row ever names a removed object.
"""

from __future__ import annotations

import logging

from sqlalchemy import bindparam, delete, func, literal_column, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.types import Text

from ..db.tables import blob_uploads
from .blobs import BlobStore

log = logging.getLogger(__name__)

_ORPHANS_PER_RUN = 1000


class UploadLost(RuntimeError):
    """An object of this store was removed as an orphan before its row committed."""


_KEYS = bindparam("keys", type_=ARRAY(Text))
_RECORD = text("INSERT INTO blob_uploads (key) SELECT unnest(CAST(:keys AS TEXT[])) ON CONFLICT DO NOTHING"
               ).bindparams(_KEYS)


async def record_in(conn: AsyncConnection, keys: list[str]) -> list[None]:
    """Record ``keys`` as objects no row names (to be put, or to be removed) in ``conn``'s transaction,
    in one statement that may run twice (a ``GroupCommit`` work, also in autocommit: one None per key)."""
    if keys:
        await conn.execute(_RECORD, {"keys": keys})
    return [None] * len(keys)


def check_settled(indexed: dict[str, bool]) -> None:
    """Inside the store transaction, after the index statement settled the records of the objects
    it indexed (``index.add_instances``: path -> whether its record was there): raise UploadLost
    when one was removed as an orphan meanwhile (the transaction then rolls back)."""
    missing = sum(not settled for settled in indexed.values())
    if missing:
        raise UploadLost(f"{missing} object(s) were removed as orphans before they were indexed")


async def forget(engine: AsyncEngine, blobs: BlobStore, keys: list[str]) -> None:
    """Remove objects no row names (a duplicate, a failed transaction) and their records; on a
    failure housekeeping removes them later."""
    if not keys:
        return
    try:
        await blobs.delete(keys)
        async with engine.begin() as conn:
            await conn.execute(delete(blob_uploads).where(blob_uploads.c.key.in_(keys)))
    except Exception as exc:  # noqa: BLE001 - left to housekeeping
        log.warning("%d unindexed object(s) left for housekeeping: %s", len(keys), exc)


async def remove_orphans(engine: AsyncEngine, blobs: BlobStore, grace_seconds: int) -> list[str]:
    """Delete the objects whose records are older than ``grace_seconds``; their keys."""
    older = blob_uploads.c.created_at <= func.now() - literal_column("interval '1 second'") * float(grace_seconds)
    async with engine.begin() as conn:
        keys = list((await conn.execute(
            select(blob_uploads.c.key).where(older).order_by(blob_uploads.c.created_at)
            .limit(_ORPHANS_PER_RUN).with_for_update(skip_locked=True))).scalars())
        if keys:
            await blobs.delete(keys)
            await conn.execute(delete(blob_uploads).where(blob_uploads.c.key.in_(keys)))
    if keys:
        log.info("removed %d orphan object(s) from %s", len(keys), blobs.describe())
    return keys
