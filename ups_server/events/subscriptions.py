"""The subscription state table of PS3.4 Table CC.2.3-2 (checklist UPS-SUB-01..11).

Per (AE, workitem): Not Subscribed / Subscribed with Lock / Subscribed w/o Lock (a row in
``subscriptions`` or none). Per AE: No Global / Global with Lock / Global w/o Lock (a row in
``global_subscriptions``, possibly filtered). Initial State Reports go through the outbox in
the same transaction as the subscription change.

Global subscriptions cover the SCHEDULED and IN PROGRESS workitems: subscribing an AE (with
a deletion lock) to every COMPLETED / CANCELED workitem would hold them all forever.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection
from typing import Any

from sqlalchemy import ColumnElement, Text, and_, cast, delete, exists, func, literal, select, true
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..audit.record import PROCEDURE_RECORD, Actor, record
from ..db.tables import global_subscriptions, subscriptions, workitems
from ..dicom.uids import FILTERED_GLOBAL_SUBSCRIPTION, GLOBAL_SUBSCRIPTION
from ..ups.attributes import IN_PROGRESS, SCHEDULED
from ..ups.errors import Outcome, UPSError
from ..ups.service import Change
from . import messages, outbox
from .filters import FilterQuery, to_stored, where_of, where_of_json

GLOBAL_TARGETS = (GLOBAL_SUBSCRIPTION, FILTERED_GLOBAL_SUBSCRIPTION)
ACTIVE_STATES = (SCHEDULED, IN_PROGRESS)


def is_global(target: str) -> bool:
    return target in GLOBAL_TARGETS


SUBSCRIBERS = "subscribers"
# The AEs subscribed to a workitem, as SQL over its row (NULL: none); a UPSService row column
SUBSCRIBERS_OF_ROW = (select(func.array_agg(subscriptions.c.aet))
                      .where(subscriptions.c.workitem_uid == workitems.c.uid).scalar_subquery())


class Subscriptions:
    """Subscribe / unsubscribe / suspend, and who receives a workitem's events."""

    def __init__(self, engine: AsyncEngine, dimse_aets: Callable[[], Collection[str]]):
        self.engine = engine
        self.dimse_aets = dimse_aets

    async def _emit(self, conn: AsyncConnection, events: list[messages.Event], aets: Collection[str]) -> None:
        await outbox.write(conn, events, aets, self.dimse_aets())

    @staticmethod
    async def _audit(conn: AsyncConnection, actor: Actor | None, what: str, aet: str, target: str) -> None:
        """The audit row of a subscription change asked for by ``actor`` (None: the server itself)."""
        if actor is not None:
            await record(conn, PROCEDURE_RECORD, actor, f"{what} {aet}", workitem=target, action="U")

    # ---- N-ACTION 3 / POST .../subscribers/{aet} -------------------------------------------

    async def subscribe(self, target: str, aet: str, deletion_lock: bool,
                        filter_query: FilterQuery | None = None, *, via_http: bool = False,
                        actor: Actor | None = None, visible: ColumnElement[bool] | None = None) -> Outcome:
        """``visible``: SQL over ``workitems`` of what the subscriber may see (``access.visible``;
        None: everything); a workitem outside it is answered as unknown (C307 / 404)."""
        stored = to_stored(filter_query) if target == FILTERED_GLOBAL_SUBSCRIPTION else None
        async with self.engine.begin() as conn:
            if is_global(target):
                await self._subscribe_global(conn, aet, deletion_lock, stored, via_http)
            else:
                await self._subscribe_one(conn, target, aet, deletion_lock, via_http, visible)
            await self._audit(conn, actor, "subscribe", aet, target)
        return Outcome.SUCCESS

    async def _subscribe_one(self, conn: AsyncConnection, uid: str, aet: str, lock: bool, via_http: bool,
                             visible: ColumnElement[bool] | None) -> None:
        row = (await conn.execute(select(workitems.c.dataset, workitems.c.state)
                                  .where(workitems.c.uid == uid, visible if visible is not None else true())
                                  .with_for_update(of=workitems, key_share=True))).first()
        if row is None:
            raise UPSError(Outcome.NO_SUCH_UPS, f"Workitem {uid} does not exist")
        stmt = pg_insert(subscriptions).values(aet=aet, workitem_uid=uid, deletion_lock=lock, via_http=via_http)
        await conn.execute(stmt.on_conflict_do_update(
            index_elements=["aet", "workitem_uid"],
            set_={"deletion_lock": lock, "via_http": subscriptions.c.via_http | via_http}))
        # the initial State Report, even when already subscribed (UPS-SUB-04, UPS-SUB-05)
        await self._emit(conn, [messages.state_report(uid, row.dataset, row.state)], [aet])

    async def _subscribe_global(self, conn: AsyncConnection, aet: str, lock: bool,
                                stored: dict[str, Any] | None, via_http: bool) -> None:
        stmt = pg_insert(global_subscriptions).values(
            aet=aet, deletion_lock=lock, filtered=stored is not None, filter=stored, via_http=via_http)
        await conn.execute(stmt.on_conflict_do_update(
            index_elements=["aet"],
            set_={"deletion_lock": lock, "filtered": stored is not None, "filter": stored,
                  "via_http": global_subscriptions.c.via_http | via_http}))
        already = exists().where(and_(subscriptions.c.aet == aet, subscriptions.c.workitem_uid == workitems.c.uid))
        chosen = (
            select(literal(aet), workitems.c.uid, literal(lock), literal(via_http))
            .where(workitems.c.state.in_(ACTIVE_STATES), ~already,
                   where_of(stored) if stored is not None else true())
            .order_by(workitems.c.seq)
        )
        new = (await conn.execute(
            pg_insert(subscriptions)
            .from_select(["aet", "workitem_uid", "deletion_lock", "via_http"], chosen)
            .on_conflict_do_nothing()
            .returning(subscriptions.c.workitem_uid))).scalars().all()
        if lock and new:  # initial events only for global-with-lock (UPS-SUB-04, CC.2.4.3)
            rows = (await conn.execute(select(workitems.c.uid, workitems.c.dataset, workitems.c.state)
                                       .where(workitems.c.uid.in_(new)).order_by(workitems.c.seq))).all()
            await self._emit(conn, [messages.state_report(r.uid, r.dataset, r.state) for r in rows], [aet])

    # ---- N-ACTION 4 / DELETE .../subscribers/{aet} -----------------------------------------

    async def unsubscribe(self, target: str, aet: str, actor: Actor | None = None) -> None:
        """Remove a subscription. On a global UID: the global subscription and every workitem
        subscription of the AE, releasing its locks (UPS-SUB-02, UPS-SUB-10). NOT_SUBSCRIBED when
        there was none, C307 for an unknown workitem."""
        async with self.engine.begin() as conn:
            if is_global(target):
                g = await conn.execute(delete(global_subscriptions).where(global_subscriptions.c.aet == aet))
                s = await conn.execute(delete(subscriptions).where(subscriptions.c.aet == aet))
                removed = bool(g.rowcount or s.rowcount)
            else:
                known = (await conn.execute(select(workitems.c.uid).where(workitems.c.uid == target))).first()
                if known is None:
                    raise UPSError(Outcome.NO_SUCH_UPS, f"Workitem {target} does not exist")
                s = await conn.execute(delete(subscriptions).where(subscriptions.c.aet == aet,
                                                                   subscriptions.c.workitem_uid == target))
                removed = bool(s.rowcount)
            if removed:
                await self._audit(conn, actor, "unsubscribe", aet, target)
        if not removed:
            raise UPSError(Outcome.NOT_SUBSCRIBED, f"{aet} has no subscription to {target}")

    # ---- N-ACTION 5 / POST .../subscribers/{aet}/suspend -----------------------------------

    async def suspend_global(self, target: str, aet: str, actor: Actor | None = None) -> None:
        """Global state -> No Global; workitem subscriptions unchanged (UPS-SUB-03). C314 on a
        workitem UID, NOT_SUBSCRIBED when the AE has no global subscription."""
        if not is_global(target):
            raise UPSError(Outcome.ACTION_NOT_APPROPRIATE,
                           "Suspend Global Subscription applies to the global subscription UIDs only")
        async with self.engine.begin() as conn:
            g = await conn.execute(delete(global_subscriptions).where(global_subscriptions.c.aet == aet))
            if g.rowcount:
                await self._audit(conn, actor, "suspend", aet, target)
        if not g.rowcount:
            raise UPSError(Outcome.NOT_SUBSCRIBED, f"{aet} has no global subscription")

    # ---- inside the transaction of a change ------------------------------------------------

    async def auto_subscribe(self, conn: AsyncConnection, change: Change) -> list[str]:
        """UPS created: subscribe every global subscriber whose filter (if any) matches it,
        with its global deletion lock (UPS-SUB-04). Each distinct filter is evaluated once, all of
        them in one query, and the subscriptions are written by one INSERT ... SELECT: the cost
        follows the number of distinct filters, not of subscribers. Returns the AEs subscribed."""
        g = global_subscriptions
        texts = (await conn.execute(select(cast(g.c.filter, Text)).where(g.c.filtered).distinct())).scalars().all()
        filters: dict[str, ColumnElement[bool]] = {}
        for text_ in texts:
            with contextlib.suppress(UPSError):  # a filter that no longer compiles subscribes to nothing
                filters[text_] = where_of_json(text_)
        matched: list[str] = []
        if filters:
            keys = list(filters)
            hit = (await conn.execute(select(*(filters[k].label(f"f{i}") for i, k in enumerate(keys)))
                                      .where(workitems.c.uid == change.uid))).first()
            matched = [k for k, ok in zip(keys, hit or (), strict=False) if ok]
        chosen = (select(g.c.aet, literal(change.uid), g.c.deletion_lock, g.c.via_http)
                  .where(~g.c.filtered | (cast(g.c.filter, Text) == outbox.any_of(matched, Text))))
        new = (await conn.execute(pg_insert(subscriptions)
                                  .from_select(["aet", "workitem_uid", "deletion_lock", "via_http"], chosen)
                                  .on_conflict_do_nothing().returning(subscriptions.c.aet))).scalars().all()
        return list(new)

    async def any_global(self, conn: AsyncConnection) -> bool:
        return bool((await conn.execute(select(exists().where(global_subscriptions.c.aet.is_not(None))))).scalar())

    async def subscribers(self, conn: AsyncConnection, change: Change) -> list[str]:
        """The AEs subscribed to the changed workitem: from the change's row when its write
        returned them (``SUBSCRIBERS_OF_ROW``), else queried."""
        if SUBSCRIBERS in change.row:
            return change.row[SUBSCRIBERS] or []
        return list((await conn.execute(select(subscriptions.c.aet).where(subscriptions.c.workitem_uid == change.uid)))
                    .scalars())

    async def known_aets(self, conn: AsyncConnection) -> list[str]:
        """Every AE with a subscription of any kind (SCP Status Change recipients)."""
        q = select(subscriptions.c.aet).union(select(global_subscriptions.c.aet))
        return sorted(set((await conn.execute(q)).scalars()))

    async def has_http_subscription(self, aet: str) -> bool:
        async with self.engine.connect() as conn:
            q = select(exists().where(and_(subscriptions.c.aet == aet, subscriptions.c.via_http)) |
                       exists().where(and_(global_subscriptions.c.aet == aet, global_subscriptions.c.via_http)))
            return bool((await conn.execute(q)).scalar())
