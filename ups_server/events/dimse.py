"""DIMSE delivery: N-EVENT-REPORT (UPS Event SOP Class context, Affected SOP Class = UPS Push,
UPS-EVT-01) to subscriber AEs listed in ``settings.ae_table``, over new associations opened
in worker threads so that the event loop never waits on the network.

The server is the SCP of UPS Event (it sends the reports) while it requests the association, so
it proposes SCP/SCU Role Selection (PS3.7 D.3.3.4): SCP role yes, SCU role no. Receivers such as
dcm4che's ``upsscu -O receive`` accept the class only then; receivers that ignore role selection
accept it with their default roles, and the reports go out on the same context.

Exactly one process sends each outbox row: a per-AE advisory lock gives one process the AE's
turn (events stay in order), and its rows are taken ``FOR UPDATE SKIP LOCKED``. A failed
delivery is retried with backoff until the replay window has passed; an unreachable AE only
holds up its own events.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydicom import Dataset
from pynetdicom import AE, build_role, evt

from ..auth.settings import ae_roles_of
from ..config import Settings
from ..dicom.dataset import to_pydicom
from ..dicom.uids import UPS_EVENT, UPS_PUSH
from ..rules import access
from . import outbox
from .messages import affected_instance, message_id
from .owners import subscriber_principal
from .tasks import cancel, run_when_woken

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0  # retries come due without a NOTIFY
MAX_PARALLEL_AES = 8
TIMEOUT_SECONDS = 5


def parse_address(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host or "127.0.0.1", int(port)


def send_reports(calling_aet: str, aet: str, address: str, rows: list[dict[str, Any]]) -> list[int]:
    """Blocking: one association, one N-EVENT-REPORT per row in order; the ids answered.
    Stops at the first row without an answer (order per AE)."""
    from ..dimse.server import set_nodelay

    ae = AE(ae_title=calling_aet)
    ae.add_requested_context(UPS_EVENT)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = ae.connection_timeout = TIMEOUT_SECONDS
    host, port = parse_address(address)
    role = build_role(UPS_EVENT, scu_role=False, scp_role=True)
    assoc = ae.associate(host, port, ae_title=aet, ext_neg=[role],
                         evt_handlers=[(evt.EVT_CONN_OPEN, set_nodelay)])
    if not assoc.is_established:
        log.warning("N-EVENT-REPORT to %s at %s: association not established", aet, address)
        return []
    sent: list[int] = []
    try:
        for row in rows:
            info: Dataset = to_pydicom(row["info"])
            status, _reply = assoc.send_n_event_report(
                info, int(row["event_type"]), UPS_PUSH, affected_instance(row["workitem_uid"]),
                msg_id=message_id(row["id"]), meta_uid=UPS_EVENT)
            if "Status" not in status:  # no answer: the association is gone
                break
            if status.Status != 0:
                log.info("N-EVENT-REPORT %d to %s answered status 0x%04X", row["id"], aet, status.Status)
            sent.append(row["id"])
    finally:
        if assoc.is_established:
            assoc.release()
        else:
            assoc.abort()
    return sent


class DimseDispatcher:
    def __init__(self, engine, settings: Settings, replay_seconds: int,
                 sender: Callable[[str, str, str, list[dict[str, Any]]], list[int]] = send_reports):
        self.engine = engine
        self.settings = settings
        self.replay_seconds = replay_seconds
        self.sender = sender
        self.wake = asyncio.Event()
        self._running: dict[str, asyncio.Task] = {}
        self._limit = asyncio.Semaphore(MAX_PARALLEL_AES)
        self._task: asyncio.Task | None = None
        # own threads: a dead AE waiting out its timeouts never starves asyncio.to_thread users
        self._executor: ThreadPoolExecutor | None = None

    def start(self) -> None:
        self._executor = ThreadPoolExecutor(MAX_PARALLEL_AES, thread_name_prefix="ups-event-report")
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        await cancel(self._task, *self._running.values())
        self._task = None
        self._running.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def drain(self) -> None:
        """Wait for the deliveries under way (at shutdown, bounded by the caller)."""
        running = [t for t in self._running.values() if not t.done()]
        if running:
            await asyncio.gather(*running, return_exceptions=True)

    async def _run(self) -> None:
        await run_when_woken(self.wake, self.dispatch_once, POLL_SECONDS, "DIMSE event dispatch")

    async def dispatch_once(self) -> None:
        async with self.engine.connect() as conn:
            aets = await outbox.dimse_due_aets(conn)
        for aet in aets:
            task = self._running.get(aet)
            if task is None or task.done():
                self._running[aet] = asyncio.create_task(self.deliver(aet))

    async def _hidden(self, conn, aet: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The rows of workitems ``aet``'s principal may not see (--auth oidc; issue 10)."""
        if self.settings.auth != "oidc":
            return []
        ae_roles = {a: ae_roles_of(roles) for a, roles in self.settings.ae_roles.items()}
        principal = await subscriber_principal(conn, aet, ae_roles)
        uids = await access.hidden(conn, access.visible(principal), [r["workitem_uid"] for r in rows])
        return [r for r in rows if r["workitem_uid"] in uids]

    async def deliver(self, aet: str) -> None:
        """Send the AE's pending rows while it answers."""
        async with self._limit:
            while True:
                async with self.engine.begin() as conn:
                    rows = await outbox.lock_dimse_batch(conn, aet)
                    if not rows:
                        return
                    unseen = await self._hidden(conn, aet, rows)
                    if unseen:  # not for this subscriber's eyes: done without sending
                        await outbox.mark_dimse(conn, [r["id"] for r in unseen], [], 0, self.replay_seconds)
                        rows = [r for r in rows if r not in unseen]
                        if not rows:
                            continue
                    address = self.settings.ae_table.get(aet)
                    sent: list[int] = []
                    if address:
                        try:
                            send = functools.partial(self.sender, self.settings.ae_title, aet, address, rows)
                            sent = await asyncio.get_running_loop().run_in_executor(self._executor, send)
                        except Exception:
                            log.exception("N-EVENT-REPORT to %s at %s failed", aet, address)
                    failed = [r["id"] for r in rows if r["id"] not in set(sent)]
                    attempts = max((r["dimse_attempts"] for r in rows), default=0)
                    await outbox.mark_dimse(conn, sent, failed, retry_after=min(2.0 ** attempts, 60.0),
                                            give_up_after=self.replay_seconds)
                if failed:
                    return
