"""Durable, cross-process event delivery: outbox + LISTEN/NOTIFY between two servers on one
database, replay after a SIGKILL, SCP Status Change at start and shutdown (UPS-EVT-04), and a
slow WebSocket that is dropped without delaying the others."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import os
import signal
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
from sqlalchemy import func, select, text

from ups_server.config import Settings
from ups_server.db.engine import Database
from ups_server.db.tables import event_outbox
from ups_server.events.notify import APPLICATION_NAME
from ups_server.events.wire import FrameWriting
from ups_server.server import Server
from ups_server.web.app import create_app

from .event_clients import TIMEOUT, EventReceiver, EventSocket, free_port
from .events_support import GLOBAL, claim, create, performers, subscribe, uid, update, ws_url
from .processes import serve

TXN = "1.2.826.0.1.3680043.10.5.997"


@contextlib.asynccontextmanager
async def served(settings: Settings, ws: str | type = "websockets-sansio") -> AsyncIterator[tuple[Server, str]]:
    """A Server with its own uvicorn (``ws``: its WebSocket protocol); on exit the server closes
    first (GOING DOWN goes out to the open WebSockets), then uvicorn stops."""
    server = Server(settings, Database(settings.database_url, settings.data_dir, settings.db_pool_size))
    await server.open()
    web = uvicorn.Server(uvicorn.Config(create_app(server, manage_server=False), host="127.0.0.1",
                                       port=settings.http_port, log_level="warning", ws=ws))
    task = asyncio.create_task(web.serve())
    while not web.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield server, f"http://127.0.0.1:{settings.http_port}{settings.base_path}"
    finally:
        await server.close()
        web.should_exit = True
        await task
        await server.database.dispose()


def another(settings: Settings, **changes) -> Settings:
    return dataclasses.replace(settings, http_port=free_port(), **changes)


async def test_change_on_one_process_reaches_websocket_on_another(settings):
    # DESIGN "events cross processes through the outbox and LISTEN/NOTIFY"
    async with (
        served(another(settings)) as (_a, base_a),
        served(another(settings)) as (_b, base_b),
        httpx.AsyncClient(base_url=base_a, timeout=30) as http_a,
        httpx.AsyncClient(base_url=base_b, timeout=30) as http_b,
    ):
        await create(http_a, uid(200))
        async with EventSocket(ws_url(base_b, "CROSS")) as ws:
            await subscribe(http_b, uid(200), "CROSS")
            assert (await ws.next_for(uid(200))).state == "SCHEDULED"
            await claim(http_a, uid(200), TXN)  # the change is made through process A
            ev = await ws.next_for(uid(200))
            assert (ev.event_type, ev.state) == (1, "IN PROGRESS")


async def test_dimse_event_is_sent_once_by_one_of_two_processes(settings):
    # exactly one process delivers each N-EVENT-REPORT (FOR UPDATE SKIP LOCKED + per-AE turn)
    with EventReceiver("ONCE") as receiver:
        common = {"ae_table": {"ONCE": receiver.address}}
        async with (
            served(another(settings, **common)) as (first, base_a),
            served(another(settings, **common)) as (_b, _base_b),
            httpx.AsyncClient(base_url=base_a, timeout=30) as http,
        ):
            await subscribe(http, GLOBAL, "ONCE", deletionlock="false")
            for n in range(5):
                await create(http, uid(f"210.{n}"))
            got = [await receiver.next() for _ in range(5)]
            assert [e.uid for e in got] == [uid(f"210.{n}") for n in range(5)]  # in order
            # once no row is pending any more, every send has been answered: no second copy
            await _until_no_dimse_pending(first)
            assert receiver.events.empty()


async def _until_no_dimse_pending(server: Server) -> None:
    for _ in range(int(TIMEOUT / 0.05)):
        async with server.database.engine.connect() as conn:
            if not (await conn.execute(select(func.count()).where(event_outbox.c.dimse_pending))).scalar():
                return
        await asyncio.sleep(0.05)
    raise AssertionError("DIMSE events still pending")


async def test_scp_status_change_at_shutdown_and_restart(settings):
    # UPS-EVT-04: GOING DOWN before shutdown, RESTARTED (WARM START) at start, to subscribers
    with EventReceiver("STATUS") as receiver:
        s = another(settings, ae_table={"STATUS": receiver.address})
        async with served(s) as (_server, base):
            async with httpx.AsyncClient(base_url=base, timeout=30) as http:
                await create(http, uid(220))
                await subscribe(http, uid(220), "WS_STATUS")
                await subscribe(http, GLOBAL, "STATUS")  # DIMSE receiver as HTTP subscriber's gift
            ws = await EventSocket(ws_url(base, "WS_STATUS")).__aenter__()
            assert (await ws.next_for(uid(220))).state == "SCHEDULED"
        ev = await ws.next()  # sent while the server shuts down
        assert ev.event_type == 4 and ev.info["00741242"]["Value"] == ["GOING DOWN"]
        assert ev.uid == "1.2.840.10008.5.1.4.34.5"
        await ws.__aexit__(None, None, None)
        down = await receiver.next()
        assert (down.event_type, down.info["00741242"]["Value"]) == (4, ["GOING DOWN"])
        async with served(another(s)) as (_server, base):
            up = await receiver.next()
            assert (up.event_type, up.info["00741242"]["Value"]) == (4, ["RESTARTED"])
            assert up.info["00741244"]["Value"] == ["WARM START"]
            async with EventSocket(ws_url(base, "WS_STATUS")) as ws:
                ev = await ws.next()
                assert ev.event_type == 4 and ev.info["00741242"]["Value"] == ["RESTARTED"]


async def test_event_committed_before_sigkill_is_delivered_after_restart(settings, tmp_path):
    # outbox row committed with the change; no subscriber connected; SIGKILL; restart; the
    # WebSocket that connects within event_replay_seconds receives it
    port = free_port()
    base = f"http://127.0.0.1:{port}/dicom-web"
    process = await asyncio.to_thread(serve, settings.database_url, tmp_path, port)
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            await create(http, uid(230))
            await subscribe(http, uid(230), "KILLED")
            await claim(http, uid(230), TXN)
        process.send_signal(signal.SIGKILL)
        process.wait()
        process = await asyncio.to_thread(serve, settings.database_url, tmp_path, port)
        async with EventSocket(ws_url(base, "KILLED")) as ws:
            first, second = await ws.next_for(uid(230)), await ws.next_for(uid(230))
            assert (first.state, second.state) == ("SCHEDULED", "IN PROGRESS")
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(30)


async def _slow_socket(url: str) -> asyncio.StreamWriter:
    """A WebSocket client that completes the opening handshake (RFC 6455) and then never
    reads, with a tiny receive buffer: the server's sends to it back up."""
    netloc, _, path = url.split("//", 1)[1].partition("/")
    host, port = netloc.split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    reader, writer = await asyncio.open_connection(sock=sock)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write((f"GET /{path} HTTP/1.1\r\nHost: {netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    assert head.startswith(b"HTTP/1.1 101"), head  # UPS-WS-01
    return writer


@pytest.mark.parametrize("ws", ["websockets-sansio", FrameWriting], ids=["asgi-send", "frames-written"])
async def test_slow_websocket_is_dropped_without_delaying_others(settings, ws):
    # a slow or dead subscriber never delays others or the request path; its queue overflows,
    # the connection is dropped, and it gets what it missed when it reconnects. Through the ASGI
    # send, and with the frames written to the sockets as bytes (``serve``'s protocol: the write
    # buffer's high-water mark sends the slow one's events to its queue)
    s = another(settings, event_queue_size=4)

    def big(n: int) -> dict:
        ds = performers(f"Reader^{n}", f"R{n}")  # a new assignment each time: a UPS Assigned event
        ds["00404034"]["Value"] *= 1000  # ~300 kB per event
        return ds

    async with served(s, ws) as (server, base), httpx.AsyncClient(base_url=base, timeout=30) as http:
        await create(http, uid(240))
        await subscribe(http, uid(240), "SLOW")
        await subscribe(http, uid(240), "FAST")
        slow = await _slow_socket(ws_url(base, "SLOW"))
        async with EventSocket(ws_url(base, "FAST")) as fast:
            assert (await fast.next_for(uid(240))).state == "SCHEDULED"
            n = 0
            while server.events.websockets.has_session("SLOW"):
                assert n < 1000, "the slow WebSocket was never dropped"
                n += 1
                await update(http, uid(240), big(n))
                assert (await fast.next_for(uid(240))).event_type == 5  # FAST keeps up
            # the change after the drop waits in the outbox for SLOW's next connection
            await update(http, uid(240), {"00404041": {"vr": "CS", "Value": ["INCOMPLETE"]}})
            assert (await fast.next_for(uid(240))).info["00404041"]["Value"] == ["INCOMPLETE"]
        slow.transport.abort()  # the dead client goes away
        async with EventSocket(ws_url(base, "SLOW")) as again:
            while True:
                ev = await again.next_for(uid(240))
                if ev.event_type == 1:
                    assert ev.info["00404041"]["Value"] == ["INCOMPLETE"]
                    break


async def test_lost_listen_connection_is_replaced_and_catches_up(settings):
    # the LISTEN connection is killed: the notifier reconnects and wakes the dispatchers,
    # so a change made through another process still reaches the WebSocket
    async with (
        served(another(settings)) as (a, base_a),
        served(another(settings)) as (_b, base_b),
        httpx.AsyncClient(base_url=base_a, timeout=30) as http_a,
        httpx.AsyncClient(base_url=base_b, timeout=30) as http_b,
    ):
        await create(http_b, uid(250))
        async with EventSocket(ws_url(base_a, "RELISTEN")) as ws:
            await subscribe(http_a, uid(250), "RELISTEN")
            assert (await ws.next_for(uid(250))).state == "SCHEDULED"
            async with a.database.engine.connect() as conn:
                killed = (await conn.execute(text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = :name AND datname = current_database()"),
                    {"name": APPLICATION_NAME})).scalar()
            assert killed == 2  # one per server
            await claim(http_b, uid(250), TXN)
            ev = await ws.next_for(uid(250))
            assert ev.state == "IN PROGRESS"


async def test_unreachable_dimse_subscriber_gets_events_in_order_once_it_listens(settings):
    # at least once, in order: a refused association is retried with backoff (within the
    # replay window) and the AE then receives every event of the workitem in order
    receiver = EventReceiver("LATE")
    async with served(another(settings, ae_table={"LATE": receiver.address})) as (server, base), \
            httpx.AsyncClient(base_url=base, timeout=30) as http:
        await create(http, uid(260))
        await subscribe(http, uid(260), "LATE")  # a gift subscription for the DIMSE AE
        await claim(http, uid(260), TXN)
        for _ in range(int(TIMEOUT / 0.05)):  # wait until a delivery attempt has failed
            async with server.database.engine.connect() as conn:
                if (await conn.execute(select(func.max(event_outbox.c.dimse_attempts)))).scalar():
                    break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("no failed delivery attempt recorded")
        with receiver:
            first, second = await receiver.next_for(uid(260)), await receiver.next_for(uid(260))
        assert (first.state, second.state) == ("SCHEDULED", "IN PROGRESS")
