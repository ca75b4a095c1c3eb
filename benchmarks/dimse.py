"""DIMSE load: claims per second (N-ACTION on the Pull context) and C-FIND latency.

Against a running server::

    python -m ups_server serve --data-dir /tmp/dimse-bench --http-port 8081 --dimse-port 11113
    python benchmarks/dimse.py --host 127.0.0.1 --port 11113 --ae UPS_SERVER \
        --http-url http://127.0.0.1:8081/dicom-web

Creates its own workitems first (over UPS-RS with --http-url, else N-CREATE), spread over
``--performers`` Human Performer codes and tagged with a run label; then times ``--finds``
C-FINDs (one performer's SCHEDULED workitems each) and claims every workitem from ``--clients``
client processes, one association each. Prints ONE JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import socket
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from pydicom import Dataset
from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.sop_class import UnifiedProcedureStepPull, UnifiedProcedureStepPush


def new_uid() -> str:
    return f"2.25.{uuid.uuid4().int}"


def code(value: str) -> dict[str, Any]:
    return {"00080100": {"vr": "SH", "Value": [value]}, "00080102": {"vr": "SH", "Value": ["99BENCH"]},
            "00080104": {"vr": "LO", "Value": [value]}}


def workitem(label: str, performer: str, i: int) -> dict[str, Any]:
    return {
        "00741000": {"vr": "CS", "Value": ["SCHEDULED"]},
        "00741200": {"vr": "CS", "Value": [("HIGH", "MEDIUM", "LOW")[i % 3]]},
        "00741204": {"vr": "LO", "Value": [label]},
        "00404005": {"vr": "DT", "Value": ["20261123100000"]},
        "00404041": {"vr": "CS", "Value": ["READY"]},
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": f"Bench^{i}"}]},
        "00100020": {"vr": "LO", "Value": [f"BENCH-{i}"]},
        "00404034": {"vr": "SQ", "Value": [{
            "00404009": {"vr": "SQ", "Value": [code(performer)]},
            "00404037": {"vr": "PN", "Value": [{"Alphabetic": performer}]},
            "00404036": {"vr": "LO", "Value": ["Bench"]},
        }]},
    }


def percentiles(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {}
    ordered = sorted(samples)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

    return {"p50": at(0.50), "p95": at(0.95), "p99": at(0.99), "mean": round(statistics.fmean(ordered) * 1000, 2)}


def nodelay(event: Any) -> None:
    """TCP_NODELAY on the client side too (as dcm4che's tcpNoDelay default): pynetdicom writes a
    command and its dataset as separate PDUs, which Nagle + delayed ACK would hold ~40 ms."""
    event.assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def associate(args: argparse.Namespace, calling: str) -> Association:
    ae = AE(ae_title=calling)
    ae.add_requested_context(UnifiedProcedureStepPush)
    ae.add_requested_context(UnifiedProcedureStepPull)
    assoc = ae.associate(args.host, args.port, ae_title=args.ae, evt_handlers=[(evt.EVT_CONN_OPEN, nodelay)])
    if not assoc.is_established:
        raise SystemExit(f"association {calling} -> {args.ae}@{args.host}:{args.port} failed")
    return assoc


async def create_over_http(args: argparse.Namespace, items: list[tuple[str, dict]]) -> None:
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    headers = {"Content-Type": "application/dicom+json"}
    async with httpx.AsyncClient(base_url=args.http_url, timeout=60, limits=limits) as http:
        gate = asyncio.Semaphore(args.clients)

        async def one(uid: str, ds: dict) -> None:
            async with gate:
                r = await http.post(f"/workitems?workitem={uid}", json=ds, headers=headers)
                if r.status_code != 201:
                    raise SystemExit(f"create {uid}: {r.status_code} {r.text}")

        await asyncio.gather(*(one(uid, ds) for uid, ds in items))


def run_threads(count: int, target: Callable[[int], None]) -> float:
    """Run ``target(i)`` in ``count`` threads; the wall time once all are done."""
    errors: list[BaseException] = []

    def guarded(i: int) -> None:
        try:
            target(i)
        except BaseException as exc:  # noqa: BLE001 - reported after the join
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(count)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise SystemExit(f"{len(errors)} worker(s) failed: {errors[0]!r}")
    return elapsed


def create_over_dimse(args: argparse.Namespace, items: list[tuple[str, dict]]) -> None:
    def worker(n: int) -> None:
        assoc = associate(args, f"BENCH_C{n}")
        try:
            for uid, ds in items[n::args.clients]:
                status, _ = assoc.send_n_create(Dataset.from_json(ds), UnifiedProcedureStepPush, uid)
                if status.Status not in (0x0000, 0xB300):
                    raise RuntimeError(f"N-CREATE {uid}: 0x{status.Status:04X}")
        finally:
            assoc.release()

    run_threads(args.clients, worker)


def time_finds(args: argparse.Namespace, label: str, performers: list[str]) -> tuple[list[float], list[int]]:
    assoc = associate(args, "BENCH_FIND")
    latencies: list[float] = []
    counts: list[int] = []
    try:
        for i in range(args.finds):
            query = Dataset()
            query.SOPInstanceUID = ""
            query.ProcedureStepState = "SCHEDULED"
            query.ProcedureStepLabel = label
            query.ScheduledProcedureStepPriority = ""
            query.PatientName = ""
            performer = Dataset()
            item = Dataset()
            item.CodeValue = performers[i % len(performers)]
            performer.HumanPerformerCodeSequence = [item]
            query.ScheduledHumanPerformersSequence = [performer]
            start = time.perf_counter()
            matches = 0
            for status, _ in assoc.send_c_find(query, UnifiedProcedureStepPull):
                if status.Status in (0xFF00, 0xFF01):
                    matches += 1
                elif status.Status != 0x0000:
                    raise RuntimeError(f"C-FIND: 0x{status.Status:04X}")
            latencies.append(time.perf_counter() - start)
            counts.append(matches)
    finally:
        assoc.release()
    return latencies, counts


def _claim_worker(args: argparse.Namespace, n: int, uids: list[str], barrier: Any, results: Any) -> None:
    """One client process: associate, wait for the others, claim ``uids`` one by one."""
    try:
        assoc = associate(args, f"BENCH_R{n}")
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        barrier.abort()
        results.put(("error", repr(exc)))
        return
    latencies: list[float] = []
    try:
        barrier.wait()
        start = time.monotonic()
        for uid in uids:
            info = Dataset()
            info.ProcedureStepState = "IN PROGRESS"
            info.TransactionUID = new_uid()
            t = time.monotonic()
            status, _ = assoc.send_n_action(info, 1, UnifiedProcedureStepPush, uid, meta_uid=UnifiedProcedureStepPull)
            latencies.append(time.monotonic() - t)
            if status.Status != 0x0000:
                raise RuntimeError(f"claim {uid}: 0x{status.Status:04X}")
        results.put(("ok", (start, time.monotonic(), latencies)))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        results.put(("error", repr(exc)))
    finally:
        assoc.release()


def time_claims(args: argparse.Namespace, uids: list[str]) -> tuple[float, list[float]]:
    """Claim every workitem from ``--clients`` processes (one association each), so that the
    client's own GIL does not limit the figure. Returns (wall seconds, per-claim latencies)."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(args.clients)
    results = ctx.Queue()
    procs = [ctx.Process(target=_claim_worker, args=(args, n, uids[n::args.clients], barrier, results))
             for n in range(args.clients)]
    for p in procs:
        p.start()
    outcomes = [results.get() for _ in procs]
    for p in procs:
        p.join()
    errors = [detail for kind, detail in outcomes if kind == "error"]
    if errors:
        raise SystemExit(f"{len(errors)} client(s) failed: {errors[0]}")
    runs = [detail for _, detail in outcomes]
    wall = max(end for _, end, _ in runs) - min(start for start, _, _ in runs)
    return wall, [x for _, _, lat in runs for x in lat]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=11112)
    parser.add_argument("--ae", default="UPS_SERVER", help="the server's AE title (called AE)")
    parser.add_argument("--http-url", help="DICOMweb base URL to create the workitems (else N-CREATE)")
    parser.add_argument("--workitems", type=int, default=1000)
    parser.add_argument("--performers", type=int, default=50)
    parser.add_argument("--clients", type=int, default=8, help="client processes (one association each) for the claims")
    parser.add_argument("--finds", type=int, default=300)
    args = parser.parse_args()

    label = f"BENCH-{uuid.uuid4().hex[:8]}"
    performers = [f"PERF_{i:03d}" for i in range(args.performers)]
    items = [(new_uid(), workitem(label, performers[i % len(performers)], i)) for i in range(args.workitems)]
    start = time.perf_counter()
    if args.http_url:
        asyncio.run(create_over_http(args, items))
    else:
        create_over_dimse(args, items)
    create_s = time.perf_counter() - start

    find_latencies, counts = time_finds(args, label, performers)
    claim_s, claim_latencies = time_claims(args, [uid for uid, _ in items])

    print(json.dumps({
        "benchmark": "dimse",
        "workitems": args.workitems,
        "created_over": "http" if args.http_url else "n-create",
        "create_per_s": round(args.workitems / create_s, 1),
        "clients": args.clients,
        "claims": len(claim_latencies),
        "claims_per_s": round(len(claim_latencies) / claim_s, 1),
        "claim_ms": percentiles(claim_latencies),
        "finds": len(find_latencies),
        "find_matches_mean": round(statistics.fmean(counts), 1) if counts else 0,
        "find_ms": percentiles(find_latencies),
    }))


if __name__ == "__main__":
    main()
