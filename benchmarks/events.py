"""Event latency: state change -> WebSocket receipt, with many subscribers, while claims run.

``--subscribers`` WebSockets (AE titles unique to the run) are spread over ``--listeners`` client
processes (each socket a lean RFC 6455 client reading the frames off the bytes: so that the
clients' own CPU does not limit what is measured) and subscribe with a
filtered global subscription on the run's Worklist Label. Meanwhile ``--claimers`` client
processes keep creating and claiming workitems of another Worklist Label (claims running, their
events for nobody here). Then, ``--changes`` times, one workitem of the run's label is created
(its creation State Reports awaited on every subscriber, not timed) and claimed (PUT .../state
IN PROGRESS); latency per (change, subscriber) is from sending that request to receiving its
State Report on the subscriber's WebSocket (CLOCK_MONOTONIC, one clock for all processes).

Without ``--url`` the benchmark starts ``ups-server serve`` itself (embedded PostgreSQL in a temp
dir; ``--workers 2`` for two server processes) and reports the CPU the server's processes
and PostgreSQL spent per measured change (each change: one creation and one claim, each reported
to every subscriber) and per delivered frame. Prints ONE JSON line (p50/p99/max in ms).

    python benchmarks/events.py --subscribers 1000 --changes 50        # starts the server
    python benchmarks/events.py --subscribers 1000 --workers 2
    python benchmarks/events.py --baseline /tmp/main-before               # before / after in one run
    python benchmarks/events.py --url http://127.0.0.1:8082/dicom-web --subscribers 100 --claimers 0
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness

HEADERS = {"Content-Type": "application/dicom+json", "Accept": "application/dicom+json"}
FILTERED_GLOBAL = "1.2.840.10008.5.1.4.34.5.1"
TIMEOUT = 60.0


def _el(vr: str, value: str) -> dict[str, Any]:
    return {"vr": vr, "Value": [{"Alphabetic": value} if vr == "PN" else value]}


def workitem(label: str) -> dict[str, Any]:
    return {
        "00741000": _el("CS", "SCHEDULED"), "00741200": _el("CS", "MEDIUM"), "00741204": _el("LO", "bench"),
        "00741202": _el("LO", label), "00404005": _el("DT", "20261123100000"), "00404041": _el("CS", "READY"),
        "00100010": _el("PN", "Bench^Events"), "00100020": _el("LO", "BENCH"),
    }


def claim_body() -> dict[str, Any]:
    return {"00741000": _el("CS", "IN PROGRESS"), "00081195": _el("UI", harness.new_uid())}


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


# ---- listener processes --------------------------------------------------------------------

class EventSocket(asyncio.Protocol):
    """The client end of one notification WebSocket, kept lean so that the listeners' own CPU adds
    little to what is measured (a WebSocket library's per-message work, times 1,000 sockets on two
    cores, did): the RFC 6455 opening handshake, the server's frames (unmasked, unfragmented) read
    straight off the bytes with their arrival time, pings answered with a masked pong."""

    def __init__(self, host: str, path: str, on_text: Any):
        self.request = (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
                        "Sec-WebSocket-Version: 13\r\n\r\n").encode()
        self.on_text = on_text
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.buffer = bytearray()
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed before the handshake"))

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        buf = self.buffer
        buf += data
        if not self.opened.done():
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self.opened.set_exception(ConnectionError(bytes(buf[:end]).decode(errors="replace")))
                return
            del buf[:end + 4]
            self.opened.set_result(None)
        while len(buf) >= 2:
            opcode, n, start = buf[0] & 0x0F, buf[1] & 0x7F, 2
            if n >= 126:
                start = 4 if n == 126 else 10
                if len(buf) < start:
                    return
                n = int.from_bytes(buf[2:start], "big")
            if len(buf) < start + n:
                return
            payload = bytes(buf[start:start + n])
            del buf[:start + n]
            if opcode == 1:
                self.on_text(payload, now)
            elif opcode == 9:  # ping: pong with the same data, masked as a client's frames are
                mask = os.urandom(4)
                self.transport.write(bytes([0x8A, 0x80 | len(payload)]) + mask +
                                     bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))


def listener_process(url: str, aets: list[str], label: str, ready: Any, stop: Any, out: Any) -> None:
    """Hold ``aets``' WebSockets; for each (workitem UID, state) put (uid, state, receipt times of
    all of them) on ``out`` once every socket has received it."""
    async def run() -> None:
        seen: dict[tuple[str, str], list[float]] = {}

        def received(frame: bytes, now: float) -> None:
            msg = orjson.loads(frame)
            key = (msg.get("00001000", {}).get("Value", [""])[0], msg.get("00741000", {}).get("Value", [""])[0])
            times = seen.setdefault(key, [])
            times.append(now)
            if len(times) == len(aets):
                out.put((key[0], key[1], times))
                del seen[key]

        ws = urlsplit(url)
        sockets = []
        async with httpx.AsyncClient(base_url=url, timeout=TIMEOUT) as http:
            for aet in aets:
                _transport, sock = await asyncio.get_running_loop().create_connection(
                    lambda aet=aet: EventSocket(ws.netloc, f"{ws.path}/subscribers/{aet}", received),
                    ws.hostname, ws.port)
                await asyncio.wait_for(sock.opened, TIMEOUT)
                sockets.append(sock)
            for aet in aets:
                r = await http.post(f"/workitems/{FILTERED_GLOBAL}/subscribers/{aet}",
                                    params={"deletionlock": "false", "filter": f"WorklistLabel={label}"})
                r.raise_for_status()
            ready.put(len(aets))
            await asyncio.to_thread(stop.wait)
            for aet in aets:
                await http.delete(f"/workitems/{FILTERED_GLOBAL}/subscribers/{aet}")
            for sock in sockets:
                sock.transport.close()

    asyncio.run(run())


# ---- claim load ----------------------------------------------------------------------------

def claimer_process(url: str, label: str, c: int, stop: Any, out: Any) -> None:
    """``c`` clients creating and claiming workitems of ``label`` until ``stop``; puts the claims made."""
    async def run() -> int:
        claims = 0
        async with httpx.AsyncClient(base_url=url, timeout=TIMEOUT, limits=httpx.Limits(max_connections=c)) as http:
            async def client() -> None:
                nonlocal claims
                while not stop.is_set():
                    uid = harness.new_uid()
                    r = await http.post(f"/workitems?{uid}", json=workitem(label), headers=HEADERS)
                    if r.status_code != 201:
                        continue
                    r = await http.put(f"/workitems/{uid}/state", json=claim_body(), headers=HEADERS)
                    claims += r.status_code == 200

            await asyncio.gather(*(client() for _ in range(c)))
        return claims

    out.put(asyncio.run(run()))


# ---- the measurement ------------------------------------------------------------------------

class Receipts:
    """The listener processes' reports: receipt times per (workitem UID, state)."""

    def __init__(self, queue: Any, listeners: int):
        self.queue, self.listeners = queue, listeners
        self.times: dict[tuple[str, str], list[float]] = defaultdict(list)
        self.reports: Counter[tuple[str, str]] = Counter()

    def wait(self, key: tuple[str, str]) -> list[float]:
        """Receipt times of ``key`` on every subscriber (reports of other keys are kept)."""
        deadline = time.monotonic() + TIMEOUT
        while self.reports[key] < self.listeners:
            uid, state, times = self.queue.get(timeout=max(0.1, deadline - time.monotonic()))
            self.times[(uid, state)].extend(times)
            self.reports[(uid, state)] += 1
        del self.reports[key]
        return self.times.pop(key)


def measure(url: str, args: argparse.Namespace, ups: harness.Ups | None) -> dict[str, Any]:
    run = uuid.uuid4().hex[:6].upper()
    label, background = f"EVB{run}", f"EVBG{run}"
    aets = [f"EVB{run}{i:04d}"[:16] for i in range(args.subscribers)]
    ctx = multiprocessing.get_context("spawn")
    ready, receipts, claims_out = ctx.Queue(), ctx.Queue(), ctx.Queue()
    stop_listeners, stop_claims = ctx.Event(), ctx.Event()
    shares = [aets[k::args.listeners] for k in range(args.listeners)]
    listeners = [ctx.Process(target=listener_process, args=(url, share, label, ready, stop_listeners, receipts))
                 for share in shares if share]
    for proc in listeners:
        proc.start()
    for _ in listeners:
        ready.get(timeout=600)
    claimers = [ctx.Process(target=claimer_process, args=(url, background, args.claimer_clients, stop_claims,
                                                           claims_out)) for _ in range(args.claimers)]
    for proc in claimers:
        proc.start()
    time.sleep(3 if claimers else 0)  # the claimers import, connect and get going
    latencies: list[float] = []
    requests: list[float] = []
    receipts_of = Receipts(receipts, len(listeners))
    pg_pid = ups.postgres()[1] if ups else None
    cpu0 = (harness.cpu_seconds(ups.server_pids()), harness.cpu_seconds([pg_pid], tree=True)) if ups else None
    started = time.monotonic()
    try:
        with httpx.Client(base_url=url, timeout=TIMEOUT) as http:
            for _ in range(args.changes):
                uid = harness.new_uid()
                http.post(f"/workitems?{uid}", json=workitem(label), headers=HEADERS).raise_for_status()
                receipts_of.wait((uid, "SCHEDULED"))
                start = time.monotonic()
                r = http.put(f"/workitems/{uid}/state", json=claim_body(), headers=HEADERS)
                requests.append((time.monotonic() - start) * 1000)
                r.raise_for_status()
                times = receipts_of.wait((uid, "IN PROGRESS"))
                latencies.extend((t - start) * 1000 for t in times)
        elapsed = time.monotonic() - started
        cpu = ((harness.cpu_seconds(ups.server_pids()) - cpu0[0], harness.cpu_seconds([pg_pid], tree=True) - cpu0[1])
               if ups else None)
    finally:
        stop_claims.set()
        background_claims = sum(claims_out.get(timeout=120) for _ in claimers)
        stop_listeners.set()
        for proc in [*claimers, *listeners]:
            proc.join(60)
    result: dict[str, Any] = {
        "samples": len(latencies),
        "latency_ms": {"p50": round(percentile(latencies, 50), 2), "p99": round(percentile(latencies, 99), 2),
                       "max": round(max(latencies), 2), "mean": round(statistics.fmean(latencies), 2)},
        "state_change_request_ms": {"p50": round(percentile(requests, 50), 2),
                                    "p99": round(percentile(requests, 99), 2)},
        "background_claims_per_s": round(background_claims / elapsed, 1),
        "load_average": harness.load_average(),
    }
    if cpu:
        frames = 2 * args.changes * args.subscribers
        result["server_cpu_ms_per_change"] = round(cpu[0] * 1000 / args.changes, 2)
        result["postgres_cpu_ms_per_change"] = round(cpu[1] * 1000 / args.changes, 2)
        result["server_cpu_us_per_frame"] = round(cpu[0] * 1e6 / frames, 1)
        result["cpu_includes_background_claims"] = bool(claimers)
    return result


def run_server(args: argparse.Namespace, source: Path) -> dict[str, Any]:
    """Start the server of the checkout ``source`` and measure it."""
    tmp = Path(tempfile.mkdtemp(prefix="events-bench-"))
    log = open(tmp / "server.log", "wb")  # noqa: SIM115 - closed in finally
    ups = None
    try:
        extra = ["--dimse-port", "0", "--workers", str(args.workers), *args.server_args.split()]
        ups = harness.start_ups(tmp, log, extra=extra, root=source)
        harness.wait_workers(ups.http, args.workers)
        return measure(ups.http, args, ups)
    finally:
        if ups:
            harness.stop(ups.proc)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"benchmark": "events", "subscribers": args.subscribers, "listeners": args.listeners,
                              "changes": args.changes, "claimers": f"{args.claimers}x{args.claimer_clients}"}
    if args.url:
        root = urlsplit(args.url)
        if httpx.get(f"{root.scheme}://{root.netloc}/health", timeout=30).status_code != 200:
            raise SystemExit(f"server not healthy at {args.url}")
        return {**result, "url": args.url, **measure(args.url, args, None)}
    result.update(workers=args.workers, server_args=args.server_args)
    if args.baseline:  # the other checkout first, then this one: before / after in one run
        result["baseline"] = run_server(args, Path(args.baseline).resolve())
    return {**result, **run_server(args, harness.ROOT)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="DICOMweb base URL of a running server (default: start one)")
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--listeners", type=int, default=4, help="client processes holding the WebSockets")
    parser.add_argument("--changes", type=int, default=50)
    parser.add_argument("--claimers", type=int, default=1, help="client processes creating + claiming meanwhile")
    parser.add_argument("--claimer-clients", type=int, default=4, help="concurrent clients per claimer process")
    parser.add_argument("--workers", type=int, default=1, help="worker processes of a started server")
    parser.add_argument("--baseline", help="a checkout whose server code is measured first, for before / after")
    parser.add_argument("--server-args", default="", help="extra `ups-server serve` arguments of a started server")
    print(json.dumps(run(parser.parse_args(argv)), separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
