"""WebSocket delivery (PS3.18 8.10, UPS-WS-01..06): sessions of this process, and the
dispatcher that feeds them from the outbox.

An outbox row holds one event for all its WebSocket subscribers (``ws_aets``: the AEs it has not
been sent to yet). The NOTIFY of a transaction names its rows; each process reads them once and
fans each event out in memory to the sessions of its AEs open here: the frame is put together and
encoded once per event and written, the same bytes, to each socket (``wire``), with no await per
subscriber. A socket that cannot take it at once (its write buffer is full) gets it through its
session's bounded queue and sender task, so a slow or dead client never delays another one or the
request path; a session whose queue overflows is closed (its events stay undelivered in the outbox
and are replayed when it reconnects). Once a session of an AE has sent an event, the AE is taken
off the row's ``ws_aets``; rows not yet sent to an AE and younger than the replay window are sent
to a session of it when it (re)connects, before newer events. That backlog is paced to the
session's queue (only events committed after it connected can overflow it).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import logging
from collections.abc import Awaitable, Callable, Sequence

from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..auth.principal import OPEN, Principal
from ..rules import access
from . import outbox
from .messages import WebSocketFrames
from .tasks import cancel, run_when_woken
from .wire import text_frame

log = logging.getLogger(__name__)

CLOSE_TIMEOUT = 5.0  # a client that reads nothing cannot receive the close frame either
OVERFLOW_CLOSE_CODE = 1013  # Try Again Later: the client fell too far behind
GOING_AWAY_CLOSE_CODE = 1001  # the server shuts down
# A safety net: the NOTIFYs, a session's connection and a LISTEN reconnection wake the dispatcher
# at once. Its scan of every AE here compares each undelivered row's AEs with them (PostgreSQL's
# array overlap: rows x AEs x AEs), not to be run every few seconds.
POLL_SECONDS = 60.0

Pair = tuple[int, str]  # (outbox row id, AE title)


class Frame:
    """An event's text frame: the text for the ASGI send, the encoded bytes (made once) for writes."""

    __slots__ = ("_wire", "text")

    def __init__(self, text: str):
        self.text = text
        self._wire: bytes | None = None

    @property
    def wire(self) -> bytes:
        if self._wire is None:
            self._wire = text_frame(self.text)
        return self._wire


class Offer(enum.Enum):
    SENT = "sent"  # written to the socket now
    QUEUED = "queued"  # for the session's sender task
    REFUSED = "refused"  # the session is ending (its queue overflowed, or shutdown)


class Session:
    """One open WebSocket of a subscriber AE. ``write_frame``: writes an encoded frame at once,
    or answers False (``wire.WRITE_FRAME``); None: every event goes through the queue."""

    def __init__(self, aet: str, queue_size: int, principal: Principal = OPEN,
                 write_frame: Callable[[bytes], bool] | None = None):
        self.aet = aet
        self.visible = access.visible(principal)  # None: every event; else SQL of what it may see
        self.viewer = dataclasses.replace(principal, address=None)  # sessions of one viewer see the same
        self.write_frame = write_frame
        self.queue: asyncio.Queue[tuple[int, Frame]] = asyncio.Queue(queue_size)
        self.sending = False  # the sender task holds an event taken off the queue
        self.overflowed = asyncio.Event()  # set to end the session (queue overflow, shutdown)
        self.close_code = OVERFLOW_CLOSE_CODE
        self.failed: list[int] = []
        self.backlog_until = 0  # outbox ids up to this one were committed before it connected
        self.paced = False  # backlog held back until the queue drains
        self.caught_up = False  # its backlog has been offered: new events go to it as they come

    def offer(self, row_id: int, frame: Frame) -> Offer:
        """Write the frame now if nothing queued is before it and the socket takes it, else queue it."""
        if self.overflowed.is_set():
            return Offer.REFUSED
        if (self.write_frame is not None and not self.sending and self.queue.empty()
                and self.write_frame(frame.wire)):
            return Offer.SENT
        try:
            self.queue.put_nowait((row_id, frame))
            return Offer.QUEUED
        except asyncio.QueueFull:
            self.overflowed.set()
            return Offer.REFUSED

    def unsent(self) -> list[int]:
        ids = list(self.failed)
        while not self.queue.empty():
            ids.append(self.queue.get_nowait()[0])
        return ids


class WebSocketDispatcher:
    def __init__(self, engine: AsyncEngine, replay_seconds: int, queue_size: int):
        self.engine = engine
        self.replay_seconds = replay_seconds
        self.queue_size = queue_size
        self.sessions: dict[str, set[Session]] = {}
        self.offered: set[Pair] = set()  # given to a session here (sent or queued), not yet marked sent
        self.sent: set[Pair] = set()  # sent, to be marked in the outbox
        self._notified: list[tuple[int, int]] = []  # id ranges of committed rows, to fan out
        self._rescan: set[str] = set()  # AEs whose undelivered rows are to be read (backlog, retries)
        self._restricted = 0  # sessions here whose principal does not see every workitem
        self._dispatching = asyncio.Lock()  # one dispatch at a time, or two could queue a row twice
        self.wake = asyncio.Event()
        self._marks = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    # ---- sessions ---------------------------------------------------------------------------

    def has_session(self, aet: str) -> bool:
        return bool(self.sessions.get(aet))

    async def serve(self, aet: str, send: Callable[[str], Awaitable[None]],
                    receive_closed: Callable[[], Awaitable[None]],
                    close: Callable[[int], Awaitable[None]], principal: Principal = OPEN,
                    write_frame: Callable[[bytes], bool] | None = None) -> None:
        """Run one accepted WebSocket until the client goes away or falls behind. A session of a
        restricted principal gets only the events of workitems it may see (issue 10)."""
        session = Session(aet, self.queue_size, principal, write_frame)
        async with self.engine.connect() as conn:
            session.backlog_until = await outbox.last_id(conn)
        self.sessions.setdefault(aet, set()).add(session)
        self._restricted += session.visible is not None
        self.rescan(aet)  # replay what this AE missed
        sender = asyncio.create_task(self._pump(session, send))
        closed = asyncio.create_task(receive_closed())
        overflow = asyncio.create_task(session.overflowed.wait())
        try:
            await asyncio.wait({sender, closed, overflow}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sender, closed, overflow):
                task.cancel()
            await asyncio.gather(sender, closed, overflow, return_exceptions=True)
            self._drop(session)
        if session.overflowed.is_set():
            if session.close_code == OVERFLOW_CLOSE_CODE:
                log.warning("WebSocket of %s closed: more than %d events waiting", aet, self.queue_size)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(close(session.close_code), CLOSE_TIMEOUT)

    async def _pump(self, session: Session, send: Callable[[str], Awaitable[None]]) -> None:
        while True:
            row_id, frame = await session.queue.get()
            session.sending = True
            try:
                await send(frame.text)
            except asyncio.CancelledError:
                session.failed.append(row_id)
                raise
            except Exception:
                log.debug("WebSocket send to %s failed", session.aet, exc_info=True)
                session.failed.append(row_id)  # not sent: replayed later
                return
            finally:
                session.sending = False
            self._sent((row_id, session.aet))
            if session.paced and session.queue.qsize() <= session.queue.maxsize // 2:
                session.paced = False
                self.rescan(session.aet)  # room for more of the backlog

    def _drop(self, session: Session) -> None:
        peers = self.sessions.get(session.aet)
        if peers is not None and session in peers:
            peers.discard(session)
            self._restricted -= session.visible is not None
            if not peers:
                del self.sessions[session.aet]
        unsent = {(i, session.aet) for i in session.unsent()} - self.sent
        if unsent:
            self.offered -= unsent
            self.rescan(session.aet)  # another session of the AE may take them

    def close_all(self) -> None:
        for peers in list(self.sessions.values()):
            for s in list(peers):
                s.close_code = GOING_AWAY_CLOSE_CODE
                s.overflowed.set()

    # ---- what wakes the dispatcher ----------------------------------------------------------

    def notified(self, payload: str | None) -> None:
        """A NOTIFY of the outbox: the rows it names, or (none named: the LISTEN connection is new)
        every row undelivered to the AEs connected here."""
        ids = outbox.notified_ids(payload)
        if ids:
            self._notified.append(ids)
        else:
            self._rescan.update(self.sessions)
        self.wake.set()

    def rescan(self, aet: str) -> None:
        self._rescan.add(aet)
        self.wake.set()

    # ---- dispatching ------------------------------------------------------------------------

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._run()), asyncio.create_task(self._run_marks())]

    async def stop(self) -> None:
        await cancel(*self._tasks)
        self._tasks = []
        with contextlib.suppress(Exception):
            await self.flush_marks()

    async def _run(self) -> None:
        await run_when_woken(self.wake, self.dispatch_once, POLL_SECONDS, "WebSocket event dispatch")

    async def _run_marks(self) -> None:
        while True:
            await self._marks.wait()
            self._marks.clear()
            await asyncio.sleep(0.02)  # gather a few
            try:
                await self.flush_marks()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("marking WebSocket events delivered failed; retrying")
                await asyncio.sleep(1)
                self._marks.set()

    def _sent(self, pair: Pair) -> None:
        self.sent.add(pair)
        self._marks.set()

    async def flush_marks(self) -> None:
        if not self.sent:
            return
        pairs, self.sent = self.sent, set()
        try:
            async with self.engine.begin() as conn:
                await outbox.mark_ws_sent(conn, pairs)
        except BaseException:
            self.sent |= pairs
            raise
        self.offered -= pairs

    async def dispatch_once(self, limit: int = 1000) -> int:
        """Fan out the rows NOTIFYs named, after the backlog of the AEs to rescan (without either:
        the backlog of every AE connected here, a safety net). Returns the rows read."""
        async with self._dispatching:
            ranges, self._notified = self._notified, []
            rescan, self._rescan = self._rescan, set()
            try:
                return await self._dispatch(ranges, rescan if ranges or rescan else set(self.sessions), limit)
            except BaseException:  # read again at the next try (what was offered is not offered twice)
                self._notified[:0] = ranges
                self._rescan |= rescan
                raise

    async def _dispatch(self, ranges: list[tuple[int, int]], rescan: set[str], limit: int) -> int:
        rescan &= set(self.sessions)
        if not self.sessions:
            return 0
        count = 0
        async with self.engine.connect() as conn:
            if rescan:
                count += await self._scan(conn, rescan, limit)
            if ranges:
                rows = await outbox.ws_rows(conn, min(r[0] for r in ranges), max(r[1] for r in ranges))
                await self._fan_out(conn, rows)
                count += len(rows)
        return count

    async def _scan(self, conn: AsyncConnection, aets: set[str], limit: int) -> int:
        """Offer the undelivered rows of ``aets`` to their sessions, oldest first, page by page."""
        scanned = [s for aet in aets for s in self.sessions.get(aet, ())]
        held: set[str] = set()  # AEs whose backlog waits for queue room (order per AE)
        after, count = 0, 0
        while True:
            rows = await outbox.undelivered_ws(conn, aets, after, self.replay_seconds, limit)
            await self._fan_out(conn, rows, aets, held)
            count += len(rows)
            if len(rows) < limit:
                break
            after = rows[-1]["id"]
        for session in scanned:
            session.caught_up = session.aet not in held
        return count

    async def _fan_out(self, conn: AsyncConnection, rows: Sequence[RowMapping], scanned: set[str] | None = None,
                       held: set[str] | None = None) -> None:
        """Offer each row to the sessions here of the AEs it is still for: every session of an AE
        being ``scanned`` (its backlog, in order), else those caught up with their backlog."""
        hidden = await self._hidden(conn, rows)
        frames = WebSocketFrames()
        sessions, offered = self.sessions, self.offered
        for row in rows:
            row_id, uid = row["id"], row["workitem_uid"]
            frame: Frame | None = None
            for aet in row["ws_aets"]:
                peers = sessions.get(aet)
                if not peers or (row_id, aet) in offered:
                    continue
                if scanned is not None and (aet not in scanned or aet in held):
                    continue
                taken = sent = False
                for session in peers:  # no await in this loop: the set does not change
                    if scanned is None and not session.caught_up:
                        continue  # its backlog first: the scan that is due gives it this row too
                    if hidden and (session.viewer, uid) in hidden:  # not for this subscriber's eyes
                        taken = sent = True
                        continue
                    if row_id <= session.backlog_until and session.queue.full():
                        session.paced = True
                        continue
                    if frame is None:
                        frame = Frame(frames.text(row_id, row["event_type"], uid, row["info"]))
                    offer = session.offer(row_id, frame)
                    if offer is Offer.SENT:
                        taken = sent = True
                    elif offer is Offer.QUEUED:
                        taken = True
                if taken:
                    offered.add((row_id, aet))
                    if sent:
                        self._sent((row_id, aet))
                elif scanned is not None:
                    held.add(aet)

    async def _hidden(self, conn: AsyncConnection, rows: Sequence[RowMapping]) -> set[tuple[Principal, str]]:
        """(viewer, workitem UID) pairs of ``rows`` whose workitem the viewer may not see: one query
        per restricted viewer with a session here of an AE of the rows (none in open mode)."""
        hidden: set[tuple[Principal, str]] = set()
        if not self._restricted or not rows:
            return hidden
        restricted = [s for peers in self.sessions.values() for s in peers if s.visible is not None]
        aets = {aet for r in rows for aet in r["ws_aets"]}
        viewers = {s.viewer: s.visible for s in restricted if s.aet in aets}
        uids = [r["workitem_uid"] for r in rows]
        for viewer, visible in viewers.items():
            hidden |= {(viewer, uid) for uid in await access.hidden(conn, visible, uids)}
        return hidden
