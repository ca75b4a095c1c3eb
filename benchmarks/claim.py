"""Claim throughput against a running ups-server: create N workitems, drain them with C clients.

Two ways of draining, each on its own N fresh workitems (a Worklist Label unique to the run):

- ``search``: each client searches ``GET /workitems?ProcedureStepState=SCHEDULED&limit=C``,
  tries the found workitems in random order with ``PUT .../state`` (IN PROGRESS, its own
  Transaction UID) until one claim succeeds; a 400/409 is a lost race, not an error.
- ``claim-next``: each client calls ``POST /workitems/claim`` until it answers 204.

Prints ONE JSON line: per mode claims/s, latency p50/p95/p99 (ms, per successful claim:
from starting to look to holding the workitem), double claims (workitems two clients both
believed they claimed), lost races, errors, and unclaimed leftovers.

    python benchmarks/claim.py --url http://127.0.0.1:8080/dicom-web -n 5000 -c 32
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
import uuid
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

import httpx

HEADERS = {"Content-Type": "application/dicom+json", "Accept": "application/dicom+json"}


def _el(vr: str, value: str) -> dict[str, Any]:
    return {"vr": vr, "Value": [{"Alphabetic": value} if vr == "PN" else value]}


def workitem(label: str, i: int) -> dict[str, Any]:
    return {
        "00741000": _el("CS", "SCHEDULED"),
        "00741200": _el("CS", ("HIGH", "MEDIUM", "LOW")[i % 3]),
        "00741204": _el("LO", "Read"),
        "00741202": _el("LO", label),
        "00404005": _el("DT", "20261123100000"),
        "00404041": _el("CS", "READY"),
        "00100010": _el("PN", f"Bench^{i}"),
        "00100020": _el("LO", f"BENCH-{i}"),
    }


def new_uid() -> str:
    return f"2.25.{uuid.uuid4().int}"


class Stats:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.claimed: list[str] = []
        self.lost_races = 0
        self.errors: Counter[str] = Counter()

    def error(self, what: str) -> None:
        self.errors[what] += 1


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0] * 1000, 2)
    return round(statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1] * 1000, 2)


async def create_all(http: httpx.AsyncClient, label: str, n: int, c: int, stats: Stats) -> float:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    async def worker() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            try:
                r = await http.post(f"/workitems?{new_uid()}", json=workitem(label, i), headers=HEADERS)
                if r.status_code != 201:
                    stats.error(f"create {r.status_code}")
            except httpx.HTTPError as exc:
                stats.error(f"create {type(exc).__name__}")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(c)))
    return time.perf_counter() - started


async def drain_search(http: httpx.AsyncClient, label: str, c: int, stats: Stats) -> None:
    async def client() -> None:
        while True:
            t0 = time.perf_counter()
            try:
                r = await http.get("/workitems", params={"ProcedureStepState": "SCHEDULED", "WorklistLabel": label,
                                                         "limit": str(c)}, headers=HEADERS)
            except httpx.HTTPError as exc:
                stats.error(f"search {type(exc).__name__}")
                continue
            if r.status_code == 204:
                return
            if r.status_code != 200:
                stats.error(f"search {r.status_code}")
                continue
            uids = [ds["00080018"]["Value"][0] for ds in r.json()]
            random.shuffle(uids)
            for uid in uids:
                body = {"00741000": _el("CS", "IN PROGRESS"), "00081195": _el("UI", new_uid())}
                try:
                    resp = await http.put(f"/workitems/{uid}/state", json=body, headers=HEADERS)
                except httpx.HTTPError as exc:
                    stats.error(f"claim {type(exc).__name__}")
                    continue
                if resp.status_code == 200:
                    stats.claimed.append(uid)
                    stats.latencies.append(time.perf_counter() - t0)
                    break
                if resp.status_code in (400, 409):
                    stats.lost_races += 1
                else:
                    stats.error(f"claim {resp.status_code}")

    await asyncio.gather(*(client() for _ in range(c)))


async def drain_claim_next(http: httpx.AsyncClient, label: str, c: int, stats: Stats) -> None:
    async def client(n: int) -> None:
        while True:
            t0 = time.perf_counter()
            try:
                r = await http.post("/workitems/claim", params={"WorklistLabel": label, "requester": f"BENCH{n}"},
                                    headers=HEADERS)
            except httpx.HTTPError as exc:
                stats.error(f"claim-next {type(exc).__name__}")
                continue
            if r.status_code == 204:
                return
            if r.status_code != 200:
                stats.error(f"claim-next {r.status_code}")
                if r.status_code >= 500:
                    continue
                return
            stats.claimed.append(r.json()[0]["00080018"]["Value"][0])
            stats.latencies.append(time.perf_counter() - t0)

    await asyncio.gather(*(client(n) for n in range(c)))


async def left_scheduled(http: httpx.AsyncClient, label: str) -> int:
    r = await http.get("/workitems", params={"ProcedureStepState": "SCHEDULED", "WorklistLabel": label,
                                             "limit": "1"}, headers=HEADERS)
    if r.status_code == 204:
        return 0
    warning = r.headers.get("warning", "")
    more = int(warning.split("There are ")[1].split()[0]) if "There are " in warning else 0
    return len(r.json()) + more


async def run_mode(http: httpx.AsyncClient, mode: str, n: int, c: int) -> dict[str, Any]:
    label = f"BENCH-{mode}-{uuid.uuid4().hex[:8]}"
    stats = Stats()
    create_s = await create_all(http, label, n, c, stats)
    started = time.perf_counter()
    if mode == "search":
        await drain_search(http, label, c, stats)
    else:
        await drain_claim_next(http, label, c, stats)
    elapsed = time.perf_counter() - started
    counts = Counter(stats.claimed)
    return {
        "claims": len(stats.claimed),
        "claims_per_s": round(len(stats.claimed) / elapsed, 1) if elapsed else None,
        "seconds": round(elapsed, 2),
        "latency_ms": {"p50": percentile(stats.latencies, 50), "p95": percentile(stats.latencies, 95),
                       "p99": percentile(stats.latencies, 99)},
        "double_claims": sum(1 for k in counts.values() if k > 1),
        "lost_races": stats.lost_races,
        "errors": sum(stats.errors.values()),
        "error_kinds": dict(stats.errors),
        "unclaimed": await left_scheduled(http, label),
        "creates_per_s": round(n / create_s, 1) if create_s else None,
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=args.c * 2, max_keepalive_connections=args.c * 2, keepalive_expiry=2)
    async with httpx.AsyncClient(base_url=args.url, timeout=120, limits=limits) as http:
        root = urlsplit(args.url)
        r = await http.get(f"{root.scheme}://{root.netloc}/health")
        if r.status_code != 200:
            raise SystemExit(f"server not healthy: {r.status_code} {r.text}")
        result: dict[str, Any] = {"url": args.url, "n": args.n, "c": args.c}
        for mode in args.modes:
            result[mode] = await run_mode(http, mode, args.n, args.c)
        return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080/dicom-web", help="DICOMweb base URL")
    parser.add_argument("-n", type=int, default=5000, help="workitems per mode (default 5000)")
    parser.add_argument("-c", type=int, default=32, help="concurrent clients (default 32)")
    parser.add_argument("--modes", nargs="+", default=["search", "claim-next"], choices=["search", "claim-next"])
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(main_async(args)), separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
