"""WebSocket delivery (PS3.18 8.10, UPS-WS-01..06): sessions of this process, and the
dispatcher that feeds them from the outbox.

Each session has its own bounded send queue and sender task, so a slow or dead client never
delays another one or the request path; a session whose queue overflows is closed (its
events stay undelivered in the outbox and are replayed when it reconnects). An outbox row
is marked delivered once a session of its AE has sent it; rows not yet delivered and younger
than the replay window are sent to a session when it (re)connects. That backlog is paced to
the session's queue (only events committed after it connected can overflow it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from ..auth.principal import OPEN, Principal
from ..rules import access
from . import outbox
from .messages import WebSocketFrames
from .tasks import cancel, run_when_woken

log = logging.getLogger(__name__)

CLOSE_TIMEOUT = 5.0  # a client that reads nothing cannot receive the close frame either
OVERFLOW_CLOSE_CODE = 1013  # Try Again Later: the client fell too far behind
GOING_AWAY_CLOSE_CODE = 1001  # the server shuts down
POLL_SECONDS = 5.0  # a safety net; NOTIFY wakes the dispatcher at once


class Session:
    """One open WebSocket of a subscriber AE."""

    def __init__(self, aet: str, queue_size: int, principal: Principal = OPEN):
        self.aet = aet
        self.visible = access.visible(principal)  # None: every event; else SQL of what it may see
        self.queue: asyncio.Queue[tuple[int, str]] = asyncio.Queue(queue_size)
        self.overflowed = asyncio.Event()  # set to end the session (queue overflow, shutdown)
        self.close_code = OVERFLOW_CLOSE_CODE
        self.failed: list[int] = []
        self.backlog_until = 0  # outbox ids up to this one were committed before it connected
        self.paced = False  # backlog held back until the queue drains

    def offer(self, row_id: int, text: str) -> bool:
        if self.overflowed.is_set():
            return False
        try:
            self.queue.put_nowait((row_id, text))
            return True
        except asyncio.QueueFull:
            self.overflowed.set()
            return False

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
        self.inflight: set[int] = set()  # queued to a local session, not yet marked delivered
        self._dispatching = asyncio.Lock()  # one dispatch at a time, or two could queue a row twice
        self.sent: set[int] = set()  # sent, to be marked delivered
        self.wake = asyncio.Event()
        self._marks = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    # ---- sessions ---------------------------------------------------------------------------

    def has_session(self, aet: str) -> bool:
        return bool(self.sessions.get(aet))

    async def serve(self, aet: str, send: Callable[[str], Awaitable[None]],
                    receive_closed: Callable[[], Awaitable[None]],
                    close: Callable[[int], Awaitable[None]], principal: Principal = OPEN) -> None:
        """Run one accepted WebSocket until the client goes away or falls behind. A session of a
        restricted principal gets only the events of workitems it may see (issue 10)."""
        session = Session(aet, self.queue_size, principal)
        async with self.engine.connect() as conn:
            session.backlog_until = await outbox.last_id(conn)
        self.sessions.setdefault(aet, set()).add(session)
        self.wake.set()  # replay what this AE missed
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
            row_id, text = await session.queue.get()
            try:
                await send(text)
            except asyncio.CancelledError:
                session.failed.append(row_id)
                raise
            except Exception:
                log.debug("WebSocket send to %s failed", session.aet, exc_info=True)
                session.failed.append(row_id)  # not sent: replayed later
                return
            self.sent.add(row_id)
            self._marks.set()
            if session.paced and session.queue.qsize() <= session.queue.maxsize // 2:
                session.paced = False
                self.wake.set()  # room for more of the backlog

    def _drop(self, session: Session) -> None:
        peers = self.sessions.get(session.aet)
        if peers is not None:
            peers.discard(session)
            if not peers:
                del self.sessions[session.aet]
        unsent = [i for i in session.unsent() if i not in self.sent]
        if unsent:
            self.inflight.difference_update(unsent)
            self.wake.set()  # another session of the AE may take them

    async def _hidden(self, rows: list) -> set[tuple[int, str]]:
        """(session, workitem UID) pairs of ``rows`` whose workitem the session may not see."""
        hidden: set[tuple[int, str]] = set()
        for aet in {r["aet"] for r in rows}:
            for session in self.sessions.get(aet, ()):
                if session.visible is None:
                    continue
                async with self.engine.connect() as conn:
                    uids = await access.hidden(conn, session.visible, [r["workitem_uid"] for r in rows
                                                                       if r["aet"] == aet])
                hidden |= {(id(session), uid) for uid in uids}
        return hidden

    def close_all(self) -> None:
        for peers in list(self.sessions.values()):
            for s in list(peers):
                s.close_code = GOING_AWAY_CLOSE_CODE
                s.overflowed.set()

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

    async def flush_marks(self) -> None:
        if not self.sent:
            return
        ids, self.sent = self.sent, set()
        try:
            async with self.engine.begin() as conn:
                await outbox.mark_ws_delivered(conn, ids)
        except BaseException:
            self.sent |= ids
            raise
        self.inflight.difference_update(ids)

    async def dispatch_once(self, limit: int = 1000) -> int:
        """Queue the undelivered rows of the AEs connected here, oldest first."""
        async with self._dispatching:
            return await self._dispatch(limit)

    async def _dispatch(self, limit: int) -> int:
        aets = [aet for aet, peers in self.sessions.items() if peers]
        if not aets:
            return 0
        async with self.engine.connect() as conn:
            rows = await outbox.undelivered_ws(conn, aets, self.inflight, self.replay_seconds, limit)
        held: set[str] = set()  # AEs whose backlog waits for queue room (order per AE)
        progressed = False
        hidden = await self._hidden(rows)
        frames = WebSocketFrames()  # each event's frame put together once, whatever its subscribers
        for row in rows:
            if row["aet"] in held:
                continue
            text = frames.text(row["id"], row["event_type"], row["workitem_uid"], row["info"])
            offered = False
            for session in list(self.sessions.get(row["aet"], ())):
                if (id(session), row["workitem_uid"]) in hidden:  # not for this subscriber's eyes
                    self.sent.add(row["id"])
                    self._marks.set()
                    offered = True
                    continue
                if session.queue.full() and row["id"] <= session.backlog_until:
                    session.paced = True
                    continue
                offered = session.offer(row["id"], text) or offered
            if offered:
                self.inflight.add(row["id"])
                progressed = True
            else:
                held.add(row["aet"])
        if len(rows) == limit and progressed:
            self.wake.set()
        return len(rows)
