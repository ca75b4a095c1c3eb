"""The event outbox: rows written in the transaction of the change, a NOTIFY to wake every
process's dispatchers when it commits, and the dispatchers' queries."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any

from sqlalchemy import (
    ARRAY,
    Text,
    and_,
    any_,
    bindparam,
    cast,
    delete,
    func,
    literal,
    literal_column,
    select,
    text,
    update,
)
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from ..db.tables import event_outbox
from ..dicom import jsontext
from ..metrics import EVENT_LAG
from .messages import Event

CHANNEL = "ups_events"


# The rows of a list of events, in event order, whatever their number: one statement with array
# parameters. The WebSocket subscribers share one row per event (``ws_aets``); each DIMSE
# subscriber AE gets one row per event (its delivery state: ``dimse_*``).
_EVENTS = ("FROM unnest(CAST(:uids AS text[]), CAST(:types AS bigint[]), CAST(:infos AS text[])) "
           "WITH ORDINALITY AS e(uid, type, info, n)")
_WRITE_WS = text(
    "INSERT INTO event_outbox (workitem_uid, event_type, info, ws_aets) "
    f"SELECT e.uid, e.type, CAST(e.info AS jsonb), CAST(:aets AS text[]) {_EVENTS} ORDER BY e.n RETURNING id"
).bindparams(bindparam("aets", type_=ARRAY(Text)))
_WRITE_DIMSE = text(
    "INSERT INTO event_outbox (workitem_uid, aet, event_type, info, dimse_pending) "
    f"SELECT e.uid, a.aet, e.type, CAST(e.info AS jsonb), true {_EVENTS} "
    "CROSS JOIN unnest(CAST(:dimse AS text[])) AS a(aet) ORDER BY a.aet, e.n"
)


async def write(conn: AsyncConnection, events: Iterable[Event], aets: Iterable[str],
                dimse_aets: Collection[str]) -> int:
    """The rows of ``events`` for the subscriber AEs ``aets`` (one row per event for the
    WebSocket subscribers, one per event and DIMSE AE), then a NOTIFY naming the WebSocket rows
    (delivered at commit). Returns the deliveries queued (events x AEs)."""
    aets = sorted(set(aets))
    events = list(events)
    if not aets or not events:
        return 0
    params = {"uids": [e.workitem_uid for e in events], "types": [int(e.type) for e in events],
              "infos": [jsontext.dumps_text(e.info) for e in events]}
    ids = (await conn.execute(_WRITE_WS, {**params, "aets": aets})).scalars().all()
    dimse = [aet for aet in aets if aet in dimse_aets]
    if dimse:
        await conn.execute(_WRITE_DIMSE, {**params, "dimse": dimse})
    await conn.execute(text("SELECT pg_notify(:channel, :ids)"), {"channel": CHANNEL, "ids": f"{min(ids)}-{max(ids)}"})
    return len(events) * len(aets)


def notified_ids(payload: str | None) -> tuple[int, int] | None:
    """The id range of the WebSocket rows a NOTIFY names (None: a NOTIFY without one)."""
    first, _, last = (payload or "").partition("-")
    return (int(first), int(last)) if first.isdigit() and last.isdigit() else None


def write_sql(source: Any, uid: Any, aets: Any, event_type: int, info: Any, dimse_aets: Any) -> list[Any]:
    """``write`` of one event as CTEs of a statement over ``source`` (a CTE of at most one row; ``uid``,
    ``aets`` (text[]) and the Event Information ``info`` are SQL over it; ``dimse_aets``: a text[]
    parameter): the same rows (one for the WebSocket subscribers, one per DIMSE subscriber AE) and
    the same NOTIFY naming the WebSocket row, when there is a subscriber."""
    subscriber = func.unnest(aets).table_valued("aet").render_derived()
    sorted_aets = func.array(select(subscriber.c.aet).order_by(subscriber.c.aet.collate("C"))  # sorted()
                             .scalar_subquery())
    ws = (event_outbox.insert()
          .from_select(["workitem_uid", "event_type", "info", "ws_aets"],
                       select(uid, literal(event_type), info, sorted_aets).select_from(source)
                       .where(func.cardinality(aets) > 0))
          .returning(event_outbox.c.id).cte("outbox_ws"))
    dimse = (event_outbox.insert()
             .from_select(["workitem_uid", "aet", "event_type", "info", "dimse_pending"],
                          select(uid, subscriber.c.aet, literal(event_type), info, literal_column("true"))
                          .select_from(source).join(subscriber, literal_column("true"))
                          .where(subscriber.c.aet == any_(dimse_aets)).order_by(subscriber.c.aet))
             .returning(event_outbox.c.id).cte("outbox_dimse"))
    notify = select(func.pg_notify(CHANNEL, func.concat(ws.c.id, "-", ws.c.id))).select_from(ws)
    return [ws, dimse, notify.cte("outbox_notify")]


def any_of(values: Collection, type_: Any) -> Any:
    """``= ANY(:array)``: one array parameter, however many values (no IN list to expand)."""
    return any_(bindparam(None, list(values), type_=ARRAY(type_)))


def _seconds(seconds: float):
    return literal_column("interval '1 second'") * float(seconds)


def _window(seconds: float):
    return func.now() - _seconds(seconds)


_WS_PENDING = event_outbox.c.ws_aets != literal_column("'{}'::text[]")  # the partial index's predicate
_WS_COLUMNS = (event_outbox.c.id, event_outbox.c.workitem_uid, event_outbox.c.event_type,
               cast(event_outbox.c.info, Text).label("info"), event_outbox.c.ws_aets)


async def undelivered_ws(conn: AsyncConnection, aets: Collection[str], after: int, window: int,
                         limit: int = 1000) -> Sequence[RowMapping]:
    """Rows after id ``after`` not yet sent to a WebSocket of one of ``aets``, within the replay
    window, oldest first; ``info`` as the JSON text PostgreSQL holds (sent as it is: no decoding)."""
    q = (select(*_WS_COLUMNS)
         .where(_WS_PENDING, event_outbox.c.ws_aets.overlap(bindparam(None, list(aets), type_=ARRAY(Text))),
                event_outbox.c.id > after, event_outbox.c.created_at > _window(window))
         .order_by(event_outbox.c.id).limit(limit))
    return (await conn.execute(q)).mappings().all()  # read by key: no dict copy per row


async def ws_rows(conn: AsyncConnection, first: int, last: int) -> Sequence[RowMapping]:
    """The rows from id ``first`` to ``last`` not yet sent to every WebSocket subscriber (a NOTIFY's)."""
    q = (select(*_WS_COLUMNS).where(_WS_PENDING, event_outbox.c.id.between(first, last))
         .order_by(event_outbox.c.id))
    return (await conn.execute(q)).mappings().all()


async def last_id(conn: AsyncConnection) -> int:
    return (await conn.execute(select(func.coalesce(func.max(event_outbox.c.id), 0)))).scalar() or 0


def _lag():
    """Seconds from an event row's commit (about its creation) to now, for the delivery metric."""
    return func.extract("epoch", func.clock_timestamp() - event_outbox.c.created_at)


# remove the AEs sent to from each row's ws_aets: one statement for (row id, AE) pairs of any number
_MARK_WS = text(
    "UPDATE event_outbox o SET ws_aets = ARRAY(SELECT unnest(o.ws_aets) EXCEPT "
    "SELECT s.aet FROM unnest(CAST(:ids AS bigint[]), CAST(:aets AS text[])) AS s(id, aet) WHERE s.id = o.id) "
    "WHERE o.id = ANY(CAST(:ids AS bigint[])) "
    "RETURNING extract(epoch FROM clock_timestamp() - o.created_at)"
)


async def mark_ws_sent(conn: AsyncConnection, sent: Collection[tuple[int, str]]) -> None:
    """Record that (row id, AE) pairs were sent to a WebSocket of the AE."""
    pairs = sorted(sent)  # rows locked in id order: two processes marking never deadlock
    lags = await conn.execute(_MARK_WS, {"ids": [i for i, _ in pairs], "aets": [a for _, a in pairs]})
    for lag in lags.scalars():  # once per event and marking process
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
