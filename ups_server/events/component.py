"""``Events``: the service for subscriptions and event delivery (``services.events``).

The DIMSE N-ACTION handler and the UPS-RS routes call ``subscribe`` / ``unsubscribe`` /
``suspend_global``; ``on_change``, a UPSService listener (added by the root), turns every
workitem change (UPS-RS, DIMSE, rules) into outbox rows inside the change's transaction; the
dispatchers deliver them while the component is started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from sqlalchemy import ARRAY, Text, bindparam
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..audit.record import Actor
from ..auth.principal import Principal
from ..config import Settings
from ..rules import access
from ..ups.attributes import IN_PROGRESS
from ..ups.errors import Outcome, UPSError
from ..ups.service import Change
from . import messages, outbox
from .dimse import DimseDispatcher
from .filters import FilterQuery
from .housekeeping import Housekeeper
from .notify import Notifier
from .owners import check_owner
from .subscriptions import SUBSCRIBERS, Subscriptions
from .triggers import change_events, creation_events
from .websocket import WebSocketDispatcher

log = logging.getLogger(__name__)

SHUTDOWN_DELIVERY_SECONDS = 3.0
_CLAIM_DIMSE_AETS = "claim_dimse_aets"  # claim_sql's parameter: the AEs whose events go over DIMSE


class Events:
    def __init__(self, engine: AsyncEngine, settings: Settings, *, status_changes: bool = True):
        self.settings = s = settings
        self.status_changes = status_changes  # announce RESTARTED / GOING DOWN (one process of several)
        self.engine = engine
        self.subscriptions = Subscriptions(self.engine, self.dimse_aets)
        self.websockets = WebSocketDispatcher(self.engine, s.event_replay_seconds, s.event_queue_size)
        self.dimse = DimseDispatcher(self.engine, s, s.event_replay_seconds)
        self.notifier = Notifier(self.engine.url, self.wake)
        self.housekeeper = Housekeeper(self.engine, s.housekeeping_interval, s.purge_completed_after,
                                       s.purge_canceled_after, s.event_replay_seconds)
        self._announced = False

    def dimse_aets(self) -> set[str]:
        return set(self.settings.ae_table)

    def wake(self, payload: str | None = None) -> None:
        """An outbox NOTIFY (``payload``: the WebSocket rows it names; None: catch up on all)."""
        self.websockets.notified(payload)
        self.dimse.wake.set()

    # ---- lifetime ---------------------------------------------------------------------------

    async def start(self) -> None:
        self.websockets.start()
        self.dimse.start()
        self.notifier.start()
        self.housekeeper.start()
        if self.status_changes:
            await self.status_change("RESTARTED")  # UPS-EVT-04

    async def announce_shutdown(self) -> None:
        """SCP Status Change GOING DOWN (UPS-EVT-04; ``status_changes``) and a last delivery (bounded); once."""
        if self._announced:
            return
        self._announced = True
        if self.status_changes:
            sent = await self.status_change("GOING DOWN")
            log.info("SCP Status Change GOING DOWN queued for %d subscriber channel(s)", sent)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._last_delivery(), SHUTDOWN_DELIVERY_SECONDS)

    async def stop(self) -> None:
        try:
            await self.announce_shutdown()
        finally:
            self.websockets.close_all()
            await self.housekeeper.stop()
            await self.notifier.stop()
            await self.dimse.stop()
            await self.websockets.stop()

    async def _last_delivery(self) -> None:
        await self.websockets.dispatch_once()
        await self.dimse.dispatch_once()
        while any(not s.queue.empty() for peers in self.websockets.sessions.values() for s in peers):
            await asyncio.sleep(0.02)
        await self.websockets.flush_marks()
        await self.dimse.drain()

    async def status_change(self, status: str) -> int:
        """SCP Status Change to every AE with a subscription (UPS-EVT-04)."""
        async with self.engine.begin() as conn:
            aets = await self.subscriptions.known_aets(conn)
            return await outbox.write(conn, [messages.scp_status(status)], aets, self.dimse_aets())

    # ---- the UPSService listener (inside the change's transaction) --------------------------

    async def on_change(self, conn: AsyncConnection, change: Change) -> None:
        if change.kind == "created":
            aets = await self.subscriptions.auto_subscribe(conn, change)
            events = creation_events(change) if aets else []
        else:
            events = change_events(change)
            aets = await self.subscriptions.subscribers(conn, change) if events else []
        if aets and events:
            await outbox.write(conn, events, aets, self.dimse_aets())

    @staticmethod
    def claim_sql(claimed: Any) -> list[Any]:
        """``on_change`` of a claim by claim-next as CTEs of its statement over the claimed row
        (ClaimHook): its one event, the UPS State Report IN PROGRESS (``change_events``), to the AEs
        subscribed to the workitem (``SUBSCRIBERS``, a row column this listener asks for)."""
        row = claimed.c
        return outbox.write_sql(claimed, row.uid, row[SUBSCRIBERS], int(messages.EventType.STATE_REPORT),
                                messages.state_report_sql(IN_PROGRESS, row.dataset),
                                bindparam(_CLAIM_DIMSE_AETS, type_=ARRAY(Text)))

    def claim_params(self, principal: Any, requester: str | None) -> dict[str, Any]:
        return {_CLAIM_DIMSE_AETS: sorted(self.dimse_aets())}

    async def on_changes(self, conn: AsyncConnection, changes: list[Change]) -> None:
        """A batch of changes (``rules apply``): creations cost one query when nobody has a
        global subscription (none of them is then subscribed to or reported)."""
        if any(c.kind == "created" for c in changes) and not await self.subscriptions.any_global(conn):
            changes = [c for c in changes if c.kind != "created"]
        for change in changes:
            await self.on_change(conn, change)

    # ---- the subscription API (N-ACTION 3/4/5, UPS-RS 11.10-11.12) -------------------------

    async def _actor(self, aet: str, principal: Principal | None) -> Actor | None:
        """Who changes ``aet``'s subscriptions (audited), once allowed to: only the owner of a
        subscriber AE title and admins manage it (``owners.py``). None: an in-process caller."""
        if principal is None:
            return None
        access.require_workitem_role(principal)  # events tell of workitems: ingest alone has none
        await check_owner(self.engine, aet, principal)
        return Actor.of(principal)

    async def subscribe(self, target_uid: str, aet: str, deletion_lock: bool,
                        filter_query: FilterQuery | None = None, *, via_http: bool = False,
                        principal: Principal | None = None) -> Outcome:
        """Subscribe ``aet`` to a workitem, or globally (1.2.840.10008.5.1.4.34.5 / .5.1 with
        ``filter_query``). Over DIMSE the Receiving AE needs a channel: an ae_table entry or a
        WebSocket, else C308 (UPS-SUB-09); over UPS-RS the WebSocket is the channel."""
        actor = await self._actor(aet, principal)
        if not via_http and not await self.has_channel(aet):
            raise UPSError(Outcome.UNKNOWN_RECEIVING_AE,
                           f"Receiving AE {aet!r} is not in ae_table and has no WebSocket")
        return await self.subscriptions.subscribe(target_uid, aet, deletion_lock, filter_query, via_http=via_http,
                                                  actor=actor, visible=access.visible(principal) if principal else None)

    async def unsubscribe(self, target_uid: str, aet: str, principal: Principal | None = None) -> None:
        """NOT_SUBSCRIBED when there was nothing to remove; C307 for an unknown workitem."""
        await self.subscriptions.unsubscribe(target_uid, aet, await self._actor(aet, principal))

    async def suspend_global(self, target_uid: str, aet: str, principal: Principal | None = None) -> None:
        """NOT_SUBSCRIBED without a global subscription; C314 on a workitem UID."""
        await self.subscriptions.suspend_global(target_uid, aet, await self._actor(aet, principal))

    async def has_channel(self, aet: str) -> bool:
        return (aet in self.settings.ae_table or self.websockets.has_session(aet)
                or await self.subscriptions.has_http_subscription(aet))
