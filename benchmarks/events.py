"""Event latency against a running ups-server: state change -> WebSocket receipt.

``--subscribers`` WebSockets (AE titles unique to the run) subscribe globally (without lock);
then, ``--changes`` times, one new workitem is created (its creation State Reports are drained,
not timed) and claimed (PUT .../state IN PROGRESS). Latency per (change, subscriber) is from
sending the state change request to receiving its State Report on that subscriber's
WebSocket. Prints ONE JSON line (p50/p99/max in ms).

    python -m ups_server serve --data-dir /tmp/events-bench --http-port 8082 --dimse-port 0
    python benchmarks/events.py --url http://127.0.0.1:8082/dicom-web --subscribers 100 --changes 50
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from typing import Any

import httpx
import websockets

HEADERS = {"Content-Type": "application/dicom+json", "Accept": "application/dicom+json"}
GLOBAL = "1.2.840.10008.5.1.4.34.5"
TIMEOUT = 30.0


def _el(vr: str, value: str) -> dict[str, Any]:
    return {"vr": vr, "Value": [{"Alphabetic": value} if vr == "PN" else value]}


def workitem(label: str) -> dict[str, Any]:
    return {
        "00741000": _el("CS", "SCHEDULED"), "00741200": _el("CS", "MEDIUM"), "00741204": _el("LO", "bench"),
        "00741202": _el("LO", label), "00404005": _el("DT", "20261123100000"), "00404041": _el("CS", "READY"),
        "00100010": _el("PN", "Bench^Events"), "00100020": _el("LO", "BENCH"),
    }


def ws_base(url: str) -> str:
    return "ws" + url[len("http"):] if url.startswith("http") else url


class Subscriber:
    def __init__(self, aet: str):
        self.aet = aet
        self.waiters: dict[tuple[str, str], asyncio.Future[float]] = {}
        self.conn: Any = None
        self.task: asyncio.Task | None = None

    def expect(self, uid: str, state: str) -> asyncio.Future[float]:
        fut = asyncio.get_running_loop().create_future()
        self.waiters[(uid, state)] = fut
        return fut

    async def run(self) -> None:
        async for frame in self.conn:
            now = time.perf_counter()
            msg = json.loads(frame)
            key = (msg.get("00001000", {}).get("Value", [""])[0], msg.get("00741000", {}).get("Value", [""])[0])
            fut = self.waiters.pop(key, None)
            if fut is not None and not fut.done():
                fut.set_result(now)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


async def main(args: argparse.Namespace) -> dict[str, Any]:
    run = uuid.uuid4().hex[:6].upper()
    subscribers = [Subscriber(f"EVB{run}{i:03d}"[:16]) for i in range(args.subscribers)]
    limits = httpx.Limits(max_connections=args.subscribers + 10)
    async with httpx.AsyncClient(base_url=args.url, timeout=TIMEOUT, limits=limits) as http:
        for s in subscribers:
            s.conn = await websockets.connect(f"{ws_base(args.url)}/subscribers/{s.aet}", max_size=None)
            s.task = asyncio.create_task(s.run())
        for s in subscribers:
            r = await http.post(f"/workitems/{GLOBAL}/subscribers/{s.aet}", params={"deletionlock": "false"})
            r.raise_for_status()
        latencies: list[float] = []
        requests: list[float] = []  # the state change request alone (its response)
        try:
            for n in range(args.changes):
                uid = f"2.25.{uuid.uuid4().int}"
                created = [s.expect(uid, "SCHEDULED") for s in subscribers]
                r = await http.post(f"/workitems?{uid}", json=workitem(f"EVB{run}"), headers=HEADERS)
                r.raise_for_status()
                await asyncio.wait_for(asyncio.gather(*created), TIMEOUT)
                claimed = [s.expect(uid, "IN PROGRESS") for s in subscribers]
                body = {"00741000": _el("CS", "IN PROGRESS"), "00081195": _el("UI", f"2.25.{uuid.uuid4().int}")}
                start = time.perf_counter()
                r = await http.put(f"/workitems/{uid}/state", json=body, headers=HEADERS)
                requests.append((time.perf_counter() - start) * 1000)
                r.raise_for_status()
                received = await asyncio.wait_for(asyncio.gather(*claimed), TIMEOUT)
                latencies.extend((t - start) * 1000 for t in received)
        finally:
            await http.delete(f"/workitems/{GLOBAL}/subscribers/{subscribers[0].aet}")
            for s in subscribers[1:]:
                await http.delete(f"/workitems/{GLOBAL}/subscribers/{s.aet}")
            for s in subscribers:
                await s.conn.close()
    return {
        "benchmark": "events", "url": args.url, "subscribers": args.subscribers, "changes": args.changes,
        "samples": len(latencies),
        "latency_ms": {"p50": round(percentile(latencies, 50), 2), "p99": round(percentile(latencies, 99), 2),
                       "max": round(max(latencies), 2), "mean": round(statistics.fmean(latencies), 2)},
        "state_change_request_ms": {"p50": round(percentile(requests, 50), 2),
                                    "p99": round(percentile(requests, 99), 2)},
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8080/dicom-web", help="DICOMweb base URL")
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--changes", type=int, default=50)
    result = asyncio.run(main(parser.parse_args()))
    print(json.dumps(result), file=sys.stdout)
