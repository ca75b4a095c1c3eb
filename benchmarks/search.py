"""Worklist searches at 1M workitems: p95 of the queries a worklist runs, first page and next page.

Starts ``ups-server serve`` (embedded PostgreSQL in a temp dir), seeds ``--workitems`` realistic
workitems with COPY straight into the ``workitems`` table (not through the API: seconds, not hours),
builds the indexes and VACUUM ANALYZEs, then times ``GET /workitems`` for each query below, ``--repeat`` times each, with
``limit=20``: the first page, the next page by ``offset=20`` and the next page by the keyset token of the first
page's ``Link`` header (``after=``). Beside the times (which load distorts) it reports what load does not: the
shared buffers (hit + read) and database ms of the one statement the server runs for that page (the page, and the
count of the matches after it when there are any), from EXPLAIN (ANALYZE, BUFFERS) of the same SQL:

- ``state_label``: Procedure Step State + Worklist Label
- ``performer``: + Scheduled Human Performers Sequence > Human Performer Code Sequence > Code Value
- ``date_range``: + Scheduled Procedure Step Start DateTime range (one week)
- ``patient``: Patient ID
- ``patient_name``: Patient's Name prefix (``Patient01234*``)
- ``all``: state + label + performer + date range + patient name wildcard

    python benchmarks/search.py                     # 1,000,000 workitems
    python benchmarks/search.py --workitems 100000 --repeat 50
    python benchmarks/search.py --data-dir /tmp/search-1m --explain   # keep the seeded data; print the plans

Seeded data: 20 Worklist Labels, 50 performers, 200,000 patients, start times over 90 days,
states 70% COMPLETED / 20% SCHEDULED / 5% IN PROGRESS / 5% CANCELED. Prints ONE JSON line
(seed seconds and rows/s, per query and page: p50/p95 ms, server CPU ms per request, rows, buffers and
database ms; the load average).
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
from sqlalchemy.dialects import postgresql

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness

from ups_server.dicom.query import parse_http_query
from ups_server.ups.search import statement_for
from ups_server.web import paging

CHUNK = 50_000
PAGE = 20
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


async def seed(socket_dir: str, n: int) -> float | None:
    """COPY ``n`` rows, as a restore does: the secondary indexes (the migrations' own definitions, read
    from pg_indexes) are dropped before and built again after, then ANALYZE. None: the table already
    holds workitems (a reused ``--data-dir``), nothing seeded."""
    conn = await asyncpg.connect(host=socket_dir, user="postgres", database="postgres")
    try:
        if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM workitems)"):
            return None
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
        "patient_name": {"PatientName": "Patient01234*"},
        "all": {**state_label, **performer, **week, "PatientName": "Patient0*"},
    }


def percentile(values: list[float], p: int) -> float:
    return round(statistics.quantiles(values, n=100, method="inclusive")[p - 1] * 1000, 2)


async def explain(db: asyncpg.Connection, sql: str, show: str | None) -> dict[str, Any]:
    """EXPLAIN (ANALYZE, BUFFERS) of ``sql`` (the statement as the server runs it, its values in the text):
    shared buffers hit + read, execution ms; the text plan to stderr when ``show`` names it."""
    plan = json.loads(await db.fetchval("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql))[0]
    if show:
        text = await db.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql)
        print(f"--- {show}\n" + "\n".join(r[0] for r in text), file=sys.stderr)
    top = plan["Plan"]
    return {"buffers": top["Shared Hit Blocks"] + top["Shared Read Blocks"],
            "ms": round(plan["Execution Time"], 2)}


async def statements_cost(db: asyncpg.Connection, params: dict[str, str], offset: int, after: str | None,
                          show: str | None) -> dict[str, Any]:
    """Buffers and database ms of the one statement GET /workitems runs for one page: the page (its
    keys, then their datasets) and, when matches follow it, the count of those (the Warning)."""
    query = parse_http_query(list(params.items()))
    seq = None if after is None else paging.position(after, query)
    page = statement_for(query, after=seq, offset=offset, limit=PAGE, count=True, within=None)
    sql = page.compile(dialect=postgresql.asyncpg.dialect(), compile_kwargs={"render_postcompile": True}).string
    cost = await explain(db, sql, show)
    return {"buffers": cost["buffers"], "db_ms": cost["ms"]}


async def measure(url: str, socket_dir: str, server_pids: list[int], repeat: int, show: bool) -> dict[str, Any]:
    """Each query: the first page, the next page by ``offset`` and by the Link header's token; the
    server's CPU ms per request (its processes, not PostgreSQL's)."""
    out: dict[str, Any] = {}
    db = await asyncpg.connect(host=socket_dir, user="postgres", database="postgres")
    try:
        async with httpx.AsyncClient(base_url=url, timeout=120, headers={"Accept": "application/dicom+json"}) as http:
            for name, params in queries().items():
                first = {**params, "limit": str(PAGE)}
                link = (await http.get("/workitems", params=first)).headers.get("link")
                token = httpx.URL(link.split(";")[0].strip("<>")).params["after"] if link else None
                pages = {"first": (first, 0, None), "next_offset": ({**first, "offset": str(PAGE)}, PAGE, None)}
                if token:
                    pages["next_keyset"] = ({**first, "after": token}, 0, token)
                for page, (request, offset, after) in pages.items():
                    times, r = [], None
                    cpu = harness.cpu_seconds(server_pids)
                    for _ in range(repeat):
                        t0 = time.perf_counter()
                        r = await http.get("/workitems", params=request)
                        times.append(time.perf_counter() - t0)
                        if r.status_code not in (200, 204):
                            raise RuntimeError(f"{name}: {r.status_code} {r.text[:300]}")
                    out[f"{name}_{page}"] = {
                        "p50_ms": percentile(times, 50), "p95_ms": percentile(times, 95),
                        "server_cpu_ms": round((harness.cpu_seconds(server_pids) - cpu) * 1000 / repeat, 2),
                        "rows": len(r.json()) if r.status_code == 200 else 0, "status": r.status_code,
                        **await statements_cost(db, params, offset, after, show and f"{name}_{page}")}
    finally:
        await db.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workitems", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=40, help="requests per query and page (default 40)")
    parser.add_argument("--server-args", default="", help="extra `ups-server serve` arguments")
    parser.add_argument("--explain", action="store_true",
                        help="print EXPLAIN (ANALYZE, BUFFERS) of every statement measured to stderr")
    parser.add_argument("--data-dir", type=Path,
                        help="keep the server's data here and reuse it: seeded only while it holds no workitems")
    args = parser.parse_args()
    tmp = args.data_dir or Path(tempfile.mkdtemp(prefix="search-bench-"))
    tmp.mkdir(parents=True, exist_ok=True)
    log = open(tmp / "server.log", "wb")  # noqa: SIM115 - closed in finally
    ups = None
    try:
        ups = harness.start_ups(tmp, log, extra=args.server_args.split() or None, data_dir=tmp / "ups")
        seed_s = asyncio.run(seed(ups.postgres()[0], args.workitems))
        result: dict[str, Any] = {"benchmark": "search", "workitems": args.workitems, "repeat": args.repeat}
        if seed_s is not None:
            result.update(seed_seconds=round(seed_s, 1), seed_rows_per_s=round(args.workitems / seed_s))
        result["queries"] = asyncio.run(measure(ups.http, ups.postgres()[0], ups.server_pids(), args.repeat,
                                                   args.explain))
        result["p95_ms_max"] = max(q["p95_ms"] for q in result["queries"].values())
        result["buffers_max"] = max(q["buffers"] for q in result["queries"].values())
        result["load_average"] = harness.load_average()
        print(json.dumps(result))
        return 0
    finally:
        if ups:
            harness.stop(ups.proc)
        log.close()
        if not args.data_dir:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
