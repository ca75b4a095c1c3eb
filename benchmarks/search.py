"""Worklist searches at 1M workitems: p95 of the queries a worklist runs, first page and next page.

Starts ``ups-server serve`` (embedded PostgreSQL in a temp dir), seeds ``--workitems`` realistic
workitems with COPY straight into the ``workitems`` table (not through the API: seconds, not hours),
builds the indexes and VACUUM ANALYZEs, then times ``GET /workitems`` for each query below, ``--repeat`` times each, with
``limit=20`` and ``offset`` 0 (first page) and 20 (next page):

- ``state_label``: Procedure Step State + Worklist Label
- ``performer``: + Scheduled Human Performers Sequence > Human Performer Code Sequence > Code Value
- ``date_range``: + Scheduled Procedure Step Start DateTime range (one week)
- ``patient``: Patient ID
- ``all``: state + label + performer + date range + patient name wildcard

    python benchmarks/search.py                     # 1,000,000 workitems
    python benchmarks/search.py --workitems 100000 --repeat 50

Seeded data: 20 Worklist Labels, 50 performers, 200,000 patients, start times over 90 days,
states 70% COMPLETED / 20% SCHEDULED / 5% IN PROGRESS / 5% CANCELED. Prints ONE JSON line
(seed seconds and rows/s, p50/p95 per query and page in ms, the load average).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness

CHUNK = 50_000
LABELS = [f"WL{k:02d}" for k in range(20)]
PERFORMERS = [f"DR{k:02d}" for k in range(50)]
STATES = ["COMPLETED"] * 14 + ["SCHEDULED"] * 4 + ["IN PROGRESS", "CANCELED"]
EPOCH = datetime(2026, 9, 1)
COLUMNS = ("uid", "state", "dataset", "priority", "priority_rank", "procedure_step_label", "worklist_label",
           "input_readiness", "start_dt", "patient_name", "patient_id", "study_uid", "read_group")


def el(vr: str, value: Any) -> dict[str, Any]:
    return {"vr": vr, "Value": [value]}


def _template() -> str:
    """The dataset JSON of a seeded workitem with ``{name}`` placeholders (str.format: fast enough for 1M)."""
    ds = {
        "00080016": el("UI", "1.2.840.10008.5.1.4.34.6.1"), "00080018": el("UI", "@uid"),
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": "@name"}]}, "00100020": el("LO", "@patient"),
        "0020000D": el("UI", "@study"), "00741000": el("CS", "@state"), "00741200": el("CS", "@priority"),
        "00741204": el("LO", "Read"), "00741202": el("LO", "@label"), "00404041": el("CS", "READY"),
        "00404005": el("DT", "@start"),
        "00404034": {"vr": "SQ", "Value": [{"00404009": {"vr": "SQ", "Value": [{
            "00080100": el("SH", "@performer"), "00080102": el("SH", "99BENCH"),
            "00080104": el("LO", "Reader @performer")}]}}]},
        "00404018": {"vr": "SQ", "Value": [{"00080100": el("SH", "READ"), "00080102": el("SH", "99BENCH"),
                                             "00080104": el("LO", "Read")}]},
    }
    text = json.dumps(ds).replace("{", "{{").replace("}", "}}")
    for name in ("uid", "name", "patient", "study", "state", "priority", "label", "start", "performer"):
        text = text.replace(f"@{name}", f"{{{name}}}")
    return text


TEMPLATE = _template()
RANK = {"HIGH": 0, "MEDIUM": 1, "LOW": 2}


def row(k: int, rng: random.Random) -> tuple[Any, ...]:
    uid, study = f"2.25.{10**20 + k}", f"2.25.{10**30 + k // 2}"
    state, label, performer = rng.choice(STATES), rng.choice(LABELS), rng.choice(PERFORMERS)
    priority = rng.choice(("HIGH", "MEDIUM", "MEDIUM", "LOW"))
    start = EPOCH + timedelta(minutes=rng.randrange(90 * 24 * 60))
    patient = f"P{rng.randrange(200_000):06d}"
    name = f"Patient{patient[1:]}^Bench"
    dataset = TEMPLATE.format(uid=uid, name=name, patient=patient, study=study, state=state, priority=priority,
                              label=label, start=start.strftime("%Y%m%d%H%M%S"), performer=performer)
    return (uid, state, dataset, priority, RANK[priority], "Read", label, "READY", start, name, patient, study,
            "read")


async def seed(socket_dir: str, n: int) -> float:
    """COPY ``n`` rows, as a restore does: the secondary indexes (the migrations' own definitions, read
    from pg_indexes) are dropped before and built again after, then ANALYZE."""
    conn = await asyncpg.connect(host=socket_dir, user="postgres", database="postgres")
    try:
        rng = random.Random(12)
        started = time.perf_counter()
        indexes = await conn.fetch(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename = 'workitems' AND NOT EXISTS"
            " (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)")
        for index in indexes:
            await conn.execute(f'DROP INDEX "{index["indexname"]}"')
        for first in range(0, n, CHUNK):
            rows = [row(k, rng) for k in range(first, min(n, first + CHUNK))]
            await conn.copy_records_to_table("workitems", records=rows, columns=COLUMNS)
        await conn.execute("SET maintenance_work_mem = '256MB'")
        for index in indexes:
            await conn.execute(index["indexdef"])
        await conn.execute("VACUUM ANALYZE workitems")  # the steady state autovacuum keeps
        return time.perf_counter() - started
    finally:
        await conn.close()


def queries() -> dict[str, dict[str, str]]:
    state_label = {"ProcedureStepState": "SCHEDULED", "WorklistLabel": "WL07"}
    performer = {"00404034.00404009.00080100": "DR13"}
    week = {"ScheduledProcedureStepStartDateTime": "20261005000000-20261011235959"}
    return {
        "state_label": state_label,
        "performer": {**state_label, **performer},
        "date_range": {**state_label, **week},
        "patient": {"PatientID": "P012345"},
        "all": {**state_label, **performer, **week, "PatientName": "Patient0*"},
    }


def percentile(values: list[float], p: int) -> float:
    return round(statistics.quantiles(values, n=100, method="inclusive")[p - 1] * 1000, 2)


async def measure(url: str, repeat: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        for name, params in queries().items():
            for page, offset in (("first", 0), ("next", 20)):
                times, rows, status = [], 0, None
                for _ in range(repeat):
                    t0 = time.perf_counter()
                    r = await http.get("/workitems", params={**params, "limit": "20", "offset": str(offset)},
                                       headers={"Accept": "application/dicom+json"})
                    times.append(time.perf_counter() - t0)
                    status = r.status_code
                    rows = len(r.json()) if r.status_code == 200 else 0
                    if r.status_code not in (200, 204):
                        raise RuntimeError(f"{name}: {r.status_code} {r.text[:300]}")
                out[f"{name}_{page}"] = {"p50_ms": percentile(times, 50), "p95_ms": percentile(times, 95),
                                         "rows": rows, "status": status}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workitems", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=40, help="requests per query and page (default 40)")
    parser.add_argument("--server-args", default="", help="extra `ups-server serve` arguments")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="search-bench-"))
    log = open(tmp / "server.log", "wb")  # noqa: SIM115 - closed in finally
    ups = None
    try:
        ups = harness.start_ups(tmp, log, extra=args.server_args.split() or None)
        seed_s = asyncio.run(seed(ups.postgres()[0], args.workitems))
        result: dict[str, Any] = {"benchmark": "search", "workitems": args.workitems, "seed_seconds": round(seed_s, 1),
                                  "seed_rows_per_s": round(args.workitems / seed_s), "repeat": args.repeat}
        result["queries"] = asyncio.run(measure(ups.http, args.repeat))
        result["p95_ms_max"] = max(q["p95_ms"] for q in result["queries"].values())
        result["load_average"] = harness.load_average()
        print(json.dumps(result))
        return 0
    finally:
        if ups:
            harness.stop(ups.proc)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
