"""Event receivers for the subscription / event tests: a WebSocket client (the `websockets`
library against the real uvicorn) and a pynetdicom AE accepting N-EVENT-REPORT on a free port."""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import socket
from dataclasses import dataclass
from typing import Any, Self

import websockets
from pydicom import Dataset
from pynetdicom import AE, evt
from pynetdicom.sop_class import UnifiedProcedureStepEvent

from ups_server.dicom.dataset import JsonDataset, first, from_pydicom

UPS_PUSH = "1.2.840.10008.5.1.4.34.6.1"
TIMEOUT = 15.0  # bounded wait for an event; never a timing assertion


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Received:
    """One event as a test sees it, whatever the channel."""

    event_type: int
    uid: str
    sop_class: str
    info: JsonDataset
    message_id: int | None = None

    @property
    def state(self) -> str | None:
        return first(self.info, "00741000")


def from_ws(text: str) -> Received:
    msg = json.loads(text)
    info = {k: v for k, v in msg.items() if not k.startswith("0000")}
    return Received(first(msg, "00001002"), first(msg, "00001000"), first(msg, "00000002"), info,
                    first(msg, "00000110"))


class EventSocket:
    """``async with EventSocket(url) as ws: ev = await ws.next()``."""

    def __init__(self, url: str):
        self.url = url
        self.frames: asyncio.Queue[str] = asyncio.Queue()
        self._conn: Any = None
        self._task: asyncio.Task | None = None
        self.closed = asyncio.Event()

    async def __aenter__(self) -> Self:
        self._conn = await websockets.connect(self.url, open_timeout=TIMEOUT)
        self._task = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        try:
            async for frame in self._conn:
                assert isinstance(frame, str), "events are text frames (UPS-WS-02)"
                await self.frames.put(frame)
        except websockets.ConnectionClosed:
            pass
        finally:
            self.closed.set()

    async def __aexit__(self, *exc: object) -> None:
        await self._conn.close()
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def next(self, timeout: float = TIMEOUT) -> Received:
        return from_ws(await asyncio.wait_for(self.frames.get(), timeout))

    async def next_for(self, uid: str, timeout: float = TIMEOUT) -> Received:
        """The next event of workitem ``uid`` (skipping SCP Status Change and others)."""
        while True:
            ev = await self.next(timeout)
            if ev.uid == uid:
                return ev

    async def nothing(self, wait: float = 0.5) -> bool:
        """True when no frame arrives within ``wait`` (used only to check absence)."""
        try:
            await asyncio.wait_for(self.frames.get(), wait)
        except TimeoutError:
            return True
        return False


class EventReceiver:
    """A DIMSE event-receiving AE (UPS Event SOP Class) on a free loopback port."""

    def __init__(self, ae_title: str = "RECEIVER"):
        self.ae_title = ae_title
        self.port = free_port()
        self.events: queue.Queue[Received] = queue.Queue()
        self.ae = AE(ae_title=ae_title)
        self.ae.add_supported_context(UnifiedProcedureStepEvent)
        self._server = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _on_event(self, event: Any) -> tuple[int, None]:
        req = event.request
        info: Dataset = event.event_information
        self.events.put(Received(int(req.EventTypeID), str(req.AffectedSOPInstanceUID),
                                 str(req.AffectedSOPClassUID), from_pydicom(info) if info else {},
                                 int(req.MessageID)))
        return 0x0000, None  # (status, Event Reply) (UPS-EVT-06)

    def __enter__(self) -> Self:
        self._server = self.ae.start_server(("127.0.0.1", self.port), block=False,
                                            evt_handlers=[(evt.EVT_N_EVENT_REPORT, self._on_event)])
        return self

    def __exit__(self, *exc: object) -> None:
        self.ae.shutdown()

    async def next(self, timeout: float = TIMEOUT) -> Received:
        return await asyncio.to_thread(self.events.get, True, timeout)

    async def next_for(self, uid: str, timeout: float = TIMEOUT) -> Received:
        while True:
            ev = await self.next(timeout)
            if ev.uid == uid:
                return ev
