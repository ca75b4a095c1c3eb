"""HTTP throughput and CPU per request with 1 and with 2 worker processes (``serve --workers N``).

For each ``--workers`` value the benchmark starts ``ups-server serve --workers N`` (embedded
PostgreSQL in a temp dir), creates ``--items`` workitems, and runs ``-p`` client processes x ``-c``
concurrent clients for ``--seconds``: each request is a Retrieve (``GET /workitems/{uid}`` of a
random one; 80%) or a Search (``GET /workitems?ProcedureStepState=SCHEDULED&WorklistLabel=..
&limit=20``; 20%), each on a keep-alive connection. Reports per N: requests/s, latency p50/p99,
server CPU ms per request (psutil over the server's process tree, PostgreSQL excluded) and
PostgreSQL CPU ms per request; and the scaling (requests/s with the most workers / with 1).

``--baseline DIR`` also runs each N with the server code of another checkout (e.g. a worktree of
main before a change), interleaved, so that before and after are measured in the same run.
Prints ONE JSON line.

    python benchmarks/workers.py                           # --workers 1 2, 20 s each
    python benchmarks/workers.py --workers 1 2 --seconds 30 -p 4 -c 8
    python benchmarks/workers.py --workers 1 --baseline /tmp/main-before
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
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness

HEADERS = {"Content-Type": "application/dicom+json", "Accept": "application/dicom+json"}
SEARCH_SHARE = 0.2


def _el(vr: str, value: str) -> dict[str, Any]:
    return {"vr": vr, "Value": [{"Alphabetic": value} if vr == "PN" else value]}


def workitem(label: str, i: int) -> dict[str, Any]:
    return {
        "00741000": _el("CS", "SCHEDULED"), "00741200": _el("CS", ("HIGH", "MEDIUM", "LOW")[i % 3]),
        "00741204": _el("LO", "Read"), "00741202": _el("LO", label), "00404005": _el("DT", "20261123100000"),
        "00404041": _el("CS", "READY"), "00100010": _el("PN", f"Bench^Workers^{i}"),
        "00100020": _el("LO", f"BENCH-{i}"), "00080050": _el("SH", f"ACC{i}"),
        "0020000D": _el("UI", harness.new_uid()),
    }


async def seed(url: str, label: str, n: int) -> list[str]:
    uids = [harness.new_uid() for _ in range(n)]
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        for start in range(0, n, 16):
            rs = await asyncio.gather(*(http.post(f"/workitems?{u}", json=workitem(label, start + k), headers=HEADERS)
                                        for k, u in enumerate(uids[start:start + 16])))
            for r in rs:
                r.raise_for_status()
    return uids


def client_process(url: str, uids: list[str], label: str, c: int, seconds: float, go: Any, out: Any) -> None:
    async def load() -> tuple[dict[str, int], list[float], int]:
        counts = {"retrieve": 0, "search": 0}
        latencies: list[float] = []
        errors = 0
        limits = httpx.Limits(max_connections=c, max_keepalive_connections=c)
        async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
            await asyncio.gather(*(http.get(f"/workitems/{uids[0]}", headers=HEADERS) for _ in range(c)))
            go.wait()
            end = time.perf_counter() + seconds

            async def one() -> None:
                nonlocal errors
                rnd = random.Random()
                while time.perf_counter() < end:
                    t0 = time.perf_counter()
                    if rnd.random() < SEARCH_SHARE:
                        kind = "search"
                        r = await http.get("/workitems", params={"ProcedureStepState": "SCHEDULED",
                                                                 "WorklistLabel": label, "limit": "20"},
                                           headers=HEADERS)
                    else:
                        kind = "retrieve"
                        r = await http.get(f"/workitems/{rnd.choice(uids)}", headers=HEADERS)
                    if r.status_code != 200:
                        errors += 1
                        continue
                    latencies.append(time.perf_counter() - t0)
                    counts[kind] += 1

            await asyncio.gather(*(one() for _ in range(c)))
        return counts, latencies, errors

    out.put(asyncio.run(load()))


def percentile(values: list[float], p: int) -> float | None:
    if len(values) < 2:
        return None
    return round(statistics.quantiles(values, n=100, method="inclusive")[p - 1] * 1000, 2)


def measure(ups: harness.Ups, uids: list[str], label: str, args: argparse.Namespace) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    go, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=client_process, args=(ups.http, uids, label, args.c, args.seconds, go, out))
             for _ in range(args.p)]
    for proc in procs:
        proc.start()
    time.sleep(3)  # the client processes import and connect
    pg_pid = ups.postgres()[1]
    server0, pg0 = harness.cpu_seconds(ups.server_pids()), harness.cpu_seconds([pg_pid], tree=True)
    started = time.perf_counter()
    go.set()
    counts = {"retrieve": 0, "search": 0}
    latencies: list[float] = []
    errors = 0
    for _ in procs:
        c, lat, err = out.get()
        for k in counts:
            counts[k] += c[k]
        latencies += lat
        errors += err
    elapsed = time.perf_counter() - started
    server_s = harness.cpu_seconds(ups.server_pids()) - server0
    pg_s = harness.cpu_seconds([pg_pid], tree=True) - pg0
    for proc in procs:
        proc.join()
    total = sum(counts.values())
    return {
        "requests_per_s": round(total / elapsed, 1), "requests": counts, "errors": errors,
        "latency_ms": {"p50": percentile(latencies, 50), "p99": percentile(latencies, 99)},
        "server_cpu_ms_per_request": round(server_s * 1000 / total, 3) if total else None,
        "postgres_cpu_ms_per_request": round(pg_s * 1000 / total, 3) if total else None,
        "load_average": harness.load_average(),
    }


def run_one(tmp: Path, workers: int, source: Path, args: argparse.Namespace) -> dict[str, Any]:
    log = open(tmp / f"server-{workers}-{uuid.uuid4().hex[:6]}.log", "wb")  # noqa: SIM115 - closed in finally
    ups = None
    try:
        ups = harness.start_ups(tmp, log, extra=["--workers", str(workers), "--dimse-port", "0"], root=source)
        harness.wait_workers(ups.http, workers)
        label = f"BW{uuid.uuid4().hex[:8]}"
        uids = asyncio.run(seed(ups.http, label, args.items))
        return measure(ups, uids, label, args)
    finally:
        if ups:
            harness.stop(ups.proc)
        log.close()


def run(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="workers-bench-"))
    sources = {"this": harness.ROOT, **({"baseline": Path(args.baseline).resolve()} if args.baseline else {})}
    result: dict[str, Any] = {"benchmark": "workers", "seconds": args.seconds, "processes": args.p, "c": args.c,
                              "items": args.items, "search_share": SEARCH_SHARE}
    try:
        for workers in args.workers:
            for name, source in sources.items():
                key = f"workers_{workers}" if name == "this" else f"baseline_workers_{workers}"
                result[key] = run_one(tmp, workers, source, args)
        first, last = f"workers_{args.workers[0]}", f"workers_{args.workers[-1]}"
        if first != last:
            result["scaling"] = round(result[last]["requests_per_s"] / result[first]["requests_per_s"], 2)
        return result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to run (default 1 2)")
    parser.add_argument("--seconds", type=float, default=20, help="load duration per run (default 20)")
    parser.add_argument("-p", type=int, default=4, help="client processes (default 4)")
    parser.add_argument("-c", type=int, default=8, help="concurrent clients per process (default 8)")
    parser.add_argument("--items", type=int, default=200, help="workitems created per run (default 200)")
    parser.add_argument("--baseline", help="a checkout whose server code also runs, for a before/after comparison")
    print(json.dumps(run(parser.parse_args(argv)), separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
