"""The event outbox: rows written in the transaction of the change, a NOTIFY to wake every
process's dispatchers when it commits, and the dispatchers' queries."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Text,
    all_,
    and_,
    any_,
    bindparam,
    cast,
    delete,
    func,
    literal_column,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from ..db.tables import event_outbox
from ..metrics import EVENT_LAG
from .messages import Event

CHANNEL = "ups_events"


# one row per AE of ``aets``, in their order (ids ascending), whatever the number of AEs: one
# statement with array parameters, no per-subscriber parameters to bind or compile
_WRITE = text(
    "INSERT INTO event_outbox (workitem_uid, aet, event_type, info, dimse_pending) "
    "SELECT CAST(:uid AS text), a.aet, CAST(:event_type AS bigint), :info, a.aet = ANY(:dimse) "
    "FROM unnest(CAST(:aets AS text[])) WITH ORDINALITY AS a(aet, n) ORDER BY a.n"
).bindparams(bindparam("info", type_=JSONB), bindparam("aets", type_=ARRAY(Text)),
             bindparam("dimse", type_=ARRAY(Text)))


async def write(conn: AsyncConnection, events: Iterable[Event], aets: Iterable[str],
                dimse_aets: Collection[str]) -> int:
    """One row per (event, AE), in event order, then NOTIFY (delivered at commit)."""
    aets = sorted(set(aets))
    events = list(events)
    if not aets or not events:
        return 0
    dimse = [aet for aet in aets if aet in dimse_aets]
    for e in events:
        await conn.execute(_WRITE, {"uid": e.workitem_uid, "event_type": int(e.type), "info": e.info,
                                    "aets": aets, "dimse": dimse})
    await conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})
    return len(events) * len(aets)


def any_of(values: Collection, type_: Any) -> Any:
    """``= ANY(:array)``: one array parameter, however many values (no IN list to expand)."""
    return any_(bindparam(None, list(values), type_=ARRAY(type_)))


def _seconds(seconds: float):
    return literal_column("interval '1 second'") * float(seconds)


def _window(seconds: float):
    return func.now() - _seconds(seconds)


async def undelivered_ws(conn: AsyncConnection, aets: Collection[str], exclude: Collection[int],
                         window: int, limit: int = 1000) -> Sequence[RowMapping]:
    """Rows not yet sent to any WebSocket of their AE, within the replay window, oldest first;
    ``info`` as the JSON text PostgreSQL holds (sent as it is: no decoding per row)."""
    q = (
        select(event_outbox.c.id, event_outbox.c.aet, event_outbox.c.workitem_uid,
               event_outbox.c.event_type, cast(event_outbox.c.info, Text).label("info"))
        .where(event_outbox.c.ws_delivered_at.is_(None), event_outbox.c.aet == any_of(aets, Text),
               event_outbox.c.created_at > _window(window))
        .order_by(event_outbox.c.id)
        .limit(limit)
    )
    if exclude:
        q = q.where(event_outbox.c.id != all_(bindparam(None, list(exclude), type_=ARRAY(BigInteger))))
    return (await conn.execute(q)).mappings().all()  # read by key: no dict copy per row


async def last_id(conn: AsyncConnection) -> int:
    return (await conn.execute(select(func.coalesce(func.max(event_outbox.c.id), 0)))).scalar() or 0


def _lag():
    """Seconds from an event row's commit (about its creation) to now, for the delivery metric."""
    return func.extract("epoch", func.clock_timestamp() - event_outbox.c.created_at)


async def mark_ws_delivered(conn: AsyncConnection, ids: Collection[int]) -> None:
    lags = await conn.execute(update(event_outbox).where(event_outbox.c.id == any_of(ids, BigInteger),
                                                         event_outbox.c.ws_delivered_at.is_(None))
                              .values(ws_delivered_at=func.now()).returning(_lag()))
    for lag in lags.scalars():
        EVENT_LAG.labels("websocket").observe(float(lag))


async def dimse_due_aets(conn: AsyncConnection) -> list[str]:
    q = (select(event_outbox.c.aet).distinct()
         .where(event_outbox.c.dimse_pending,
                (event_outbox.c.dimse_next_at.is_(None)) | (event_outbox.c.dimse_next_at <= func.now())))
    return list((await conn.execute(q)).scalars())


async def lock_dimse_batch(conn: AsyncConnection, aet: str, limit: int = 100) -> list[dict[str, Any]]:
    """Inside a transaction: take the AE's delivery turn (advisory lock: one process per AE, so
    events stay in order) and lock its pending rows (FOR UPDATE SKIP LOCKED: exactly one
    process sends each). Empty when another process has the turn or nothing is due."""
    got = (await conn.execute(select(func.pg_try_advisory_xact_lock(
        func.hashtextextended("ups-events-dimse:" + aet, 0))))).scalar()
    if not got:
        return []
    q = (
        select(event_outbox.c.id, event_outbox.c.aet, event_outbox.c.workitem_uid, event_outbox.c.event_type,
               event_outbox.c.info, event_outbox.c.dimse_attempts,
               (event_outbox.c.dimse_next_at.is_(None) | (event_outbox.c.dimse_next_at <= func.now())).label("due"))
        .where(event_outbox.c.dimse_pending, event_outbox.c.aet == aet)
        .order_by(event_outbox.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = [dict(r) for r in (await conn.execute(q)).mappings()]
    # head of line: wait for the first row's retry time (order per AE)
    if rows and not rows[0]["due"]:
        return []
    return rows


async def mark_dimse(conn: AsyncConnection, sent: Collection[int], failed: Collection[int],
                     retry_after: float, give_up_after: int) -> None:
    if sent:
        lags = await conn.execute(update(event_outbox).where(event_outbox.c.id.in_(list(sent)))
                                  .values(dimse_pending=False, dimse_done_at=func.now()).returning(_lag()))
        for lag in lags.scalars():
            EVENT_LAG.labels("dimse").observe(float(lag))
    if failed:
        ids = list(failed)
        await conn.execute(
            update(event_outbox).where(event_outbox.c.id.in_(ids))
            .values(dimse_attempts=event_outbox.c.dimse_attempts + 1,
                    dimse_next_at=func.now() + _seconds(retry_after)))
        # beyond the replay window nobody waits for it any more (UPS-EVT-05: no obligation to retry)
        await conn.execute(update(event_outbox).where(and_(event_outbox.c.id.in_(ids),
                                                           event_outbox.c.created_at < _window(give_up_after)))
                           .values(dimse_pending=False))


async def prune(conn: AsyncConnection, window: int) -> int:
    """Drop rows older than the replay window (delivered or not: past it nobody replays them)."""
    result = await conn.execute(delete(event_outbox).where(event_outbox.c.created_at < _window(window)))
    return result.rowcount or 0
