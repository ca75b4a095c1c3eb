"""``rules apply --all`` over many stored studies. Seeds the instance index with COPY (not through
the API: no files, no workitems), then runs the real ``ups-server rules apply --all`` three times:

1. ``initial``: creates every workitem the rules derive (two reads a study with the bundled rules);
2. ``reconcile`` - the figure of the issue: after drifting a fraction (``--drift``) of the studies
   each way in SQL (a read deleted -> re-created; an instance added -> referenced; an instance
   removed -> reference dropped; a stale SCHEDULED workitem of a retired rule -> canceled);
3. ``again``: must change nothing.

    python benchmarks/reconcile.py                        # embedded PostgreSQL in a temp dir
    python benchmarks/reconcile.py --studies 10000 --database-url postgresql+asyncpg://u:p@host/db

The database must be empty (the run migrates it). Rules: the bundled double-reading rules (two
reads per study) unless ``--rules``. Prints ONE JSON line: studies/s and changed rows per run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from ups_server.db import migrate
from ups_server.db.embedded import EmbeddedPostgres
from ups_server.db.engine import make_engine

SC = "1.2.840.10008.5.1.4.1.1.7"
TS = "1.2.840.10008.1.2.1"
CHUNK = 10_000  # studies per COPY


def new_uid() -> str:
    return f"2.25.{uuid.uuid4().int}"


def el(vr: str, value: object) -> dict:
    return {"vr": vr, "Value": [value]}


def seed_rows(n_studies: int, per_study: int):
    """(studies, series, instances) rows of ``n_studies`` single-series studies."""
    studies, series, instances = [], [], []
    for k in range(n_studies):
        study, serie = new_uid(), new_uid()
        patient = f"BENCH-{k}"
        common = {"00080020": el("DA", "20261123"), "00080050": el("SH", f"A{k}"),
                  "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Bench^Patient"}]},
                  "00100020": el("LO", patient), "0020000D": el("UI", study)}
        studies.append((study, patient, "Bench^Patient", f"A{k}", "20261123", json.dumps(common)))
        series.append((serie, study, "OT", json.dumps({"00080060": el("CS", "OT"), "0020000E": el("UI", serie)})))
        for n in range(per_study):
            sop = new_uid()
            meta = {**common, "00080016": el("UI", SC), "00080018": el("UI", sop), "00080060": el("CS", "OT"),
                    "0020000E": el("UI", serie), "00200013": el("IS", n + 1)}
            instances.append((sop, serie, study, SC, TS, f"bench/{sop}.dcm", 4096, json.dumps(meta)))
    return studies, series, instances


async def seed(url: str, n_studies: int, per_study: int) -> float:
    engine = make_engine(url, pool_size=1)
    await migrate.upgrade(engine)
    await engine.dispose()
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    started = time.perf_counter()
    try:
        if await conn.fetchval("SELECT count(*) FROM instances"):
            raise SystemExit("the database already holds instances: give an empty one")
        for start in range(0, n_studies, CHUNK):
            studies, series, instances = seed_rows(min(CHUNK, n_studies - start), per_study)
            await conn.copy_records_to_table("studies", records=studies, columns=[
                "study_uid", "patient_id", "patient_name", "accession_number", "study_date", "attributes"])
            await conn.copy_records_to_table("series", records=series, columns=[
                "series_uid", "study_uid", "modality", "attributes"])
            await conn.copy_records_to_table("instances", records=instances, columns=[
                "sop_instance_uid", "series_uid", "study_uid", "sop_class_uid", "transfer_syntax", "path", "size",
                "metadata"])
        await conn.execute("ANALYZE studies; ANALYZE series; ANALYZE instances")
    finally:
        await conn.close()
    return time.perf_counter() - started


DRIFT_SQL = (
    # a read lost: re-created
    ("DELETE FROM workitems WHERE uid IN (SELECT workitem_uid FROM rule_workitems WHERE rule = 'second-read' "
    "AND study_uid IN (SELECT study_uid FROM studies ORDER BY study_uid LIMIT $1 OFFSET 0))"),
    # an instance stored that no read references yet: referenced
    ("INSERT INTO instances (sop_instance_uid, series_uid, study_uid, sop_class_uid, transfer_syntax, path, size, "
    "metadata) SELECT sop_instance_uid || '.9', series_uid, study_uid, sop_class_uid, transfer_syntax, path, size, "
    "metadata FROM instances WHERE study_uid IN (SELECT study_uid FROM studies ORDER BY study_uid LIMIT $1 "
    "OFFSET $1) AND metadata -> '00200013' -> 'Value' ->> 0 = '1'"),
    # an instance gone: its references dropped
    ("DELETE FROM instances WHERE study_uid IN (SELECT study_uid FROM studies ORDER BY study_uid LIMIT $1 "
    "OFFSET 2 * $1) AND metadata -> '00200013' -> 'Value' ->> 0 = '1'"),
    # a SCHEDULED workitem of a rule that no longer exists: canceled
    ("WITH stale AS (INSERT INTO workitems (uid, state, dataset, priority, priority_rank, procedure_step_label, "
    "worklist_label, study_uid, read_group) SELECT uid || '.9', state, dataset || jsonb_build_object('00080018', "
    "jsonb_build_object('vr', 'UI', 'Value', jsonb_build_array(uid || '.9'))), priority, priority_rank, "
    "procedure_step_label, worklist_label, study_uid, 'retired' FROM workitems WHERE uid IN (SELECT workitem_uid "
    "FROM rule_workitems WHERE rule = 'first-read' AND study_uid IN (SELECT study_uid FROM studies ORDER BY "
    "study_uid LIMIT $1 OFFSET 3 * $1)) RETURNING uid, study_uid) "
    "INSERT INTO rule_workitems (workitem_uid, rule, study_uid, trigger) SELECT uid, 'retired-rule', study_uid, "
    "'on_store' FROM stale"),
)


async def drift(url: str, n: int) -> None:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        for statement in DRIFT_SQL:
            await conn.execute(statement, n)
    finally:
        await conn.close()


def apply_all(url: str, data_dir: Path, rules: str | None) -> dict:
    cmd = [sys.executable, "-m", "ups_server", "rules", "apply", "--all", "--database-url", url,
           "--data-dir", str(data_dir), "--log-level", "WARNING"] + (["--rules", rules] if rules else [])
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"rules apply failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    changed = re.search(r"(\d+) row\(s\) changed", done.stdout)
    created = re.search(r"created (\d+) workitem", done.stdout)
    canceled = re.search(r"cancel (\d+)", done.stdout)
    return {"seconds": round(seconds, 1), "changed_rows": int(changed.group(1)) if changed else None,
            "created": int(created.group(1)) if created else None,
            "canceled": int(canceled.group(1)) if canceled else None, "no_change": "no change" in done.stdout}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=int, default=100_000)
    parser.add_argument("--per-study", type=int, default=2, help="instances per study")
    parser.add_argument("--database-url", help="an empty database (default: embedded PostgreSQL in a temp dir)")
    parser.add_argument("--rules", help="rule file (default: the bundled double-reading rules)")
    parser.add_argument("--drift", type=float, default=0.01,
                        help="fraction of the studies drifted each of four ways before the reconcile run")
    args = parser.parse_args()
    out: dict = {"studies": args.studies, "instances": args.studies * args.per_study}
    with tempfile.TemporaryDirectory(prefix="ups-bench-reconcile-") as tmp:
        embedded = None
        url = args.database_url
        if not url:
            embedded = EmbeddedPostgres(Path(tmp) / "pg")
            url = embedded.start()
        try:
            out["seed_seconds"] = round(asyncio.run(seed(url, args.studies, args.per_study)), 1)
            out["initial"] = apply_all(url, Path(tmp), args.rules)
            asyncio.run(drift(url, int(args.studies * args.drift)))
            out["reconcile"] = apply_all(url, Path(tmp), args.rules)
            out["again"] = apply_all(url, Path(tmp), args.rules)
        finally:
            if embedded is not None:
                embedded.stop()
    for run in ("initial", "reconcile", "again"):
        out[run]["studies_per_s"] = round(args.studies / out[run]["seconds"])
    out["studies_per_s"] = out["reconcile"]["studies_per_s"]
    out["changed_rows"] = out["reconcile"]["changed_rows"]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
