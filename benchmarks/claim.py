"""Claim throughput: create N workitems, drain them with P client processes x C concurrent clients.

Two ways of draining, each on its own N fresh workitems (a Worklist Label unique to the run):

- ``search``: each client searches ``GET /workitems?ProcedureStepState=SCHEDULED&limit=C``,
  tries the found workitems in random order with ``PUT .../state`` (IN PROGRESS, its own
  Transaction UID) until one claim succeeds; a 400/409 is a lost race, not an error.
- ``claim-next``: each client calls ``POST /workitems/claim`` until it answers 204.

Prints ONE JSON line: per mode claims/s, latency p50/p95/p99 (ms, per successful claim:
from starting to look to holding the workitem), double claims (workitems two clients both
believed they claimed), lost races, errors, and unclaimed leftovers.

Without ``--url`` the benchmark starts ``ups-server serve`` itself (embedded PostgreSQL in a temp
dir) and, in the same run, measures its reference: ``pgbench -N -c 8 -j 2`` on that same
PostgreSQL (``pgbench_tps``; each mode's ``ratio_to_pgbench``), the CPU the server's processes
and PostgreSQL's processes spent per claim while draining (psutil over both process trees), and
what PostgreSQL counted on ``workitems`` meanwhile (``workitems_updates_per_claim`` and the share of
them that were HOT, ``hot_update_ratio``) and the backends it started (``postgres_sessions_per_claim``).
``--baseline DIR`` drains the same way, in the same run,
a server started from another checkout (``baseline`` in the JSON line): a before/after comparison
in the same conditions.

    python benchmarks/claim.py -n 5000 -p 4 -c 16                        # starts the server
    python benchmarks/claim.py --baseline /tmp/main-before               # and a baseline checkout
    python benchmarks/claim.py --url http://127.0.0.1:8080/dicom-web -n 5000 -p 4 -c 16
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness

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


new_uid = harness.new_uid


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


def _limits(c: int) -> httpx.Limits:
    return httpx.Limits(max_connections=c * 2, max_keepalive_connections=c * 2, keepalive_expiry=2)


def drain_process(url: str, mode: str, label: str, c: int, go: Any, out: Any) -> None:
    """One client process: wait for ``go``, drain with ``c`` concurrent clients, put its Stats on ``out``."""
    async def drain() -> Stats:
        stats = Stats()
        async with httpx.AsyncClient(base_url=url, timeout=120, limits=_limits(c)) as http:
            await http.get("/workitems", params={"limit": "1"}, headers=HEADERS)  # open a connection
            go.wait()
            if mode == "search":
                await drain_search(http, label, c, stats)
            else:
                await drain_claim_next(http, label, c, stats)
        return stats

    stats = asyncio.run(drain())
    out.put((stats.claimed, stats.latencies, stats.lost_races, dict(stats.errors)))


async def create(url: str, label: str, n: int, c: int, stats: Stats) -> float:
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=_limits(c)) as http:
        return await create_all(http, label, n, c, stats)


async def leftovers(url: str, label: str) -> int:
    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        return await left_scheduled(http, label)


async def workitem_updates(socket_dir: str) -> tuple[int, int, int]:
    """(updates, HOT updates) of ``workitems`` and the sessions (backends started) PostgreSQL has
    counted (its statistics, flushed first)."""
    conn = await asyncpg.connect(host=socket_dir, user="postgres", database="postgres")
    try:
        await conn.execute("SELECT pg_stat_force_next_flush()")
        row = await conn.fetchrow("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'workitems'")
        sessions = await conn.fetchval("SELECT sum(sessions) FROM pg_stat_database")
        return int(row[0]), int(row[1]), int(sessions)
    finally:
        await conn.close()


def run_mode(url: str, mode: str, args: argparse.Namespace, ups: harness.Ups | None) -> dict[str, Any]:
    label = f"BENCH-{mode}-{uuid.uuid4().hex[:8]}"
    stats = Stats()
    create_s = asyncio.run(create(url, label, args.n, args.c * args.p, stats))
    ctx = multiprocessing.get_context("spawn")
    go, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=drain_process, args=(url, mode, label, args.c, go, out)) for _ in range(args.p)]
    for proc in procs:
        proc.start()
    time.sleep(3)  # the processes import and connect
    socket_dir, pg_pid = ups.postgres() if ups else (None, None)
    cpu0 = (harness.cpu_seconds(ups.server_pids()), harness.cpu_seconds([pg_pid], tree=True)) if ups else None
    updates0 = asyncio.run(workitem_updates(socket_dir)) if socket_dir else None
    started = time.perf_counter()
    go.set()
    for _ in procs:
        claimed, latencies, lost, errors = out.get()
        stats.claimed += claimed
        stats.latencies += latencies
        stats.lost_races += lost
        stats.errors.update(errors)
    elapsed = time.perf_counter() - started
    for proc in procs:
        proc.join()
    counts = Counter(stats.claimed)
    result: dict[str, Any] = {
        "claims": len(stats.claimed),
        "claims_per_s": round(len(stats.claimed) / elapsed, 1) if elapsed else None,
        "seconds": round(elapsed, 2),
        "latency_ms": {"p50": percentile(stats.latencies, 50), "p95": percentile(stats.latencies, 95),
                       "p99": percentile(stats.latencies, 99)},
        "double_claims": sum(1 for k in counts.values() if k > 1),
        "lost_races": stats.lost_races,
        "errors": sum(stats.errors.values()),
        "error_kinds": dict(stats.errors),
        "unclaimed": asyncio.run(leftovers(url, label)),
        "creates_per_s": round(args.n / create_s, 1) if create_s else None,
        "load_average": harness.load_average(),
    }
    if cpu0 and stats.claimed:
        server_s = harness.cpu_seconds(ups.server_pids()) - cpu0[0]
        pg_s = harness.cpu_seconds([pg_pid], tree=True) - cpu0[1]
        result["server_cpu_ms_per_claim"] = round(server_s * 1000 / len(stats.claimed), 2)
        result["postgres_cpu_ms_per_claim"] = round(pg_s * 1000 / len(stats.claimed), 2)
    if updates0 and stats.claimed:
        time.sleep(11)  # an idle backend reports its table counts within 10 s (PGSTAT_IDLE_INTERVAL)
        updates, hot, sessions = (b - a for a, b in zip(updates0, asyncio.run(workitem_updates(socket_dir)),
                                                        strict=True))
        result["workitems_updates_per_claim"] = round(updates / len(stats.claimed), 2)
        result["hot_update_ratio"] = round(hot / updates, 3) if updates else None
        # backends PostgreSQL started while draining (the pool's overflow connections closed and
        # opened again: each new backend loads its catalog caches and plans its statements anew)
        result["postgres_sessions_per_claim"] = round(sessions / len(stats.claimed), 3)
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="claim-bench-"))
    log = open(tmp / "server.log", "wb")  # noqa: SIM115 - closed in finally
    ups = None
    try:
        if args.url:
            url = args.url
        else:
            ups = harness.start_ups(tmp, log, extra=args.server_args.split() if args.server_args else None)
            url = ups.http
        root = urlsplit(url)
        if httpx.get(f"{root.scheme}://{root.netloc}/health", timeout=30).status_code != 200:
            raise SystemExit(f"server not healthy at {url}")
        result: dict[str, Any] = {"url": url, "n": args.n, "processes": args.p, "c": args.c,
                                  "server_args": args.server_args}
        for mode in args.modes:
            result[mode] = run_mode(url, mode, args, ups)
        if args.baseline:
            result["baseline"] = run_baseline(tmp, args)
        socket_dir = ups.postgres()[0] if ups else args.pg_socket
        if socket_dir and args.pgbench_seconds:
            result["pgbench_tps"] = harness.pgbench_tps(socket_dir, args.pgbench_seconds)
            result["pgbench_load_average"] = harness.load_average()
            for mode in args.modes:
                result[mode]["ratio_to_pgbench"] = round(result[mode]["claims_per_s"] / result["pgbench_tps"], 3)
        return result
    finally:
        if ups:
            harness.stop(ups.proc)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def run_baseline(tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Every mode again against a server started from the ``--baseline`` checkout."""
    root = Path(args.baseline).resolve()
    with open(tmp / "baseline.log", "wb") as log:
        ups = harness.start_ups(tmp, log, extra=args.server_args.split() if args.server_args else None, root=root)
        try:
            return {"checkout": str(root), **{mode: run_mode(ups.http, mode, args, ups) for mode in args.modes}}
        finally:
            harness.stop(ups.proc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="DICOMweb base URL of a running server (default: start one)")
    parser.add_argument("-n", type=int, default=5000, help="workitems per mode (default 5000)")
    parser.add_argument("-p", type=int, default=4, help="client processes (default 4)")
    parser.add_argument("-c", type=int, default=16, help="concurrent clients per process (default 16)")
    parser.add_argument("--modes", nargs="+", default=["claim-next"], choices=["search", "claim-next"])
    parser.add_argument("--server-args", default="", help="extra `ups-server serve` arguments of a started server")
    parser.add_argument("--pg-socket", help="with --url: PostgreSQL socket directory for the pgbench reference")
    parser.add_argument("--baseline", help="a checkout whose server is drained the same way too (before/after)")
    parser.add_argument("--pgbench-seconds", type=int, default=15, help="pgbench -T (0: no reference run)")
    args = parser.parse_args(argv)
    print(json.dumps(run(args), separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
