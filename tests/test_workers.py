"""``ups-server serve --workers 2`` as a real process tree on its own embedded PostgreSQL: the
parent starts PostgreSQL and migrates once, both workers answer on the one port, DIMSE listens in
exactly one of them, an event caused through one worker reaches a WebSocket held by the other,
claims racing through both workers never claim twice, and SIGTERM stops everything."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

from .event_clients import EventSocket, free_port
from .processes import serve, stop
from .ups_client import create, put_state
from .workitems import DICOM_JSON

GLOBAL = "1.2.840.10008.5.1.4.34.5"


@dataclass
class Tree:
    parent: psutil.Process
    port: int
    dimse_port: int
    data_dir: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/dicom-web"

    def workers(self) -> list[psutil.Process]:
        return [p for p in self.parent.children() if "spawn_main" in " ".join(p.cmdline())]

    def holder_of(self, client_port: int) -> int:
        """The pid of the worker holding the server end of the client's connection."""
        for worker in self.workers():
            for conn in worker.net_connections("tcp"):
                if conn.raddr and conn.raddr.port == client_port and conn.laddr.port == self.port:
                    return worker.pid
        raise AssertionError(f"no worker holds the connection from port {client_port}")


def start_tree(tmp_path: Path) -> tuple[Tree, object]:
    """A started ``serve --workers 2``, once both workers are ready (one ready worker answers /health)."""
    port, dimse_port = free_port(), free_port()
    process = serve(None, tmp_path, port, "--workers", "2", "--dimse-port", str(dimse_port))
    log = tmp_path / f"serve-{port}.log"
    deadline = time.monotonic() + 120
    while log.read_text().count("ups-server ready") < 2:
        assert time.monotonic() < deadline and process.poll() is None, log.read_text()
        time.sleep(0.1)
    return Tree(psutil.Process(process.pid), port, dimse_port, tmp_path), process


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Iterator[Tree]:
    tree, process = start_tree(tmp_path_factory.mktemp("workers"))
    try:
        yield tree
    finally:
        stop(process)


async def pinned_client(tree: Tree, pid: int) -> httpx.AsyncClient:
    """An HTTP client whose one keep-alive connection was accepted by worker ``pid``."""
    for _ in range(200):
        client = httpx.AsyncClient(base_url=tree.url, limits=httpx.Limits(max_connections=1), timeout=30)
        r = await client.get(f"http://127.0.0.1:{tree.port}/health")
        if r.json()["pid"] == pid:
            return client
        await client.aclose()
    raise AssertionError(f"no connection of 200 landed on worker {pid}")


@pytest.fixture
async def clients(tree) -> AsyncIterator[dict[int, httpx.AsyncClient]]:
    """One client per worker, keyed by the worker's pid."""
    made = {pid: await pinned_client(tree, pid) for pid in (w.pid for w in tree.workers())}
    try:
        yield made
    finally:
        for client in made.values():
            await client.aclose()


def test_parent_starts_postgres_and_migrates_once_workers_share_the_port(tree):
    workers = tree.workers()
    assert len(workers) == 2
    pgdata = tree.data_dir / "pgdata"
    # the embedded PostgreSQL is held by the parent alone (the wheel's handle list), not per worker
    assert json.loads((pgdata / ".handle_pids.json").read_text()) == [tree.parent.pid]
    log = (tree.data_dir / f"serve-{tree.port}.log").read_text()
    assert log.count("starting embedded PostgreSQL") == 1
    assert log.count("database schema at revision") == 1  # migrations ran once, before the workers
    # DIMSE listens in exactly one worker
    dimse = [w.pid for w in workers for c in w.net_connections("tcp")
             if c.status == psutil.CONN_LISTEN and c.laddr.port == tree.dimse_port]
    assert len(dimse) == 1


async def test_requests_are_served_by_both_workers(tree):
    pids: set[int] = set()
    for _ in range(200):  # new connections: the kernel hands each to one of the accepting workers
        async with httpx.AsyncClient() as client:
            r = await client.get(f"http://127.0.0.1:{tree.port}/health")
        assert r.status_code == 200
        pids.add(r.json()["pid"])
        if len(pids) == 2:
            break
    assert pids == {w.pid for w in tree.workers()}


async def test_event_caused_through_one_worker_reaches_a_websocket_on_the_other(tree, clients):
    aet = "WORKERS_WS"
    async with EventSocket(f"ws://127.0.0.1:{tree.port}/dicom-web/subscribers/{aet}") as ws:
        ws_worker = tree.holder_of(ws._conn.local_address[1])
        other = next(pid for pid in clients if pid != ws_worker)
        http = clients[other]
        r = await http.post(f"/workitems/{GLOBAL}/subscribers/{aet}?deletionlock=false")
        assert r.status_code == 201, r.text
        uid = await create(http)  # through the worker that does not hold the WebSocket
        event = await ws.next_for(uid)
        assert event.state == "SCHEDULED"
        r = await put_state(http, uid, "IN PROGRESS", "1.2.826.0.1.3680043.10.77.1")
        assert r.status_code == 200, r.text
        assert (await ws.next_for(uid)).state == "IN PROGRESS"
        await http.delete(f"/workitems/{GLOBAL}/subscribers/{aet}")


async def test_claims_racing_through_both_workers_claim_each_workitem_once(tree, clients):
    http = list(clients.values())
    # UPS-STATE-04: one workitem claimed 16 times, alternately through each worker -> one 200
    uid = await create(http[0])
    results = await asyncio.gather(*(put_state(http[i % 2], uid, "IN PROGRESS", f"1.2.826.0.1.3680043.10.78.{i}")
                                     for i in range(16)))
    statuses = [r.status_code for r in results]
    assert statuses.count(200) == 1 and all(s in (200, 400, 409) for s in statuses), statuses
    # claim-next drained through both workers: every workitem once, none twice
    label = "WORKERS_RACE"
    uids = [await create(http[n % 2], **{"00741202": {"vr": "LO", "Value": [label]}}) for n in range(40)]

    async def drain(client: httpx.AsyncClient) -> list[str]:
        mine = []
        while True:
            r = await client.post(f"/workitems/claim?requester=R&WorklistLabel={label}", headers=DICOM_JSON)
            assert r.status_code in (200, 204), r.text
            if r.status_code == 204:
                return mine
            mine.append(r.json()[0]["00080018"]["Value"][0])

    per_worker = await asyncio.gather(*(drain(c) for c in http))
    claimed = [u for mine in per_worker for u in mine]
    assert sorted(claimed) == sorted(uids)


def test_sigterm_stops_the_workers_and_the_embedded_postgres(tmp_path):
    tree, process = start_tree(tmp_path)
    workers = tree.workers()
    postmaster = psutil.Process(int((tmp_path / "pgdata" / "postmaster.pid").read_text().split("\n", 1)[0]))
    process.send_signal(signal.SIGTERM)
    assert process.wait(60) == 0
    _gone, alive = psutil.wait_procs([*workers, postmaster], timeout=30)
    assert not alive
