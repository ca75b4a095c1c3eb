"""C-STORE instances/s with DCMTK's ``storescu`` (a C client: the client is not what is measured),
one association, many small instances, against ups-server through its full rules path and, in the
same run, against an Orthanc from Debian's package (started as ``benchmarks/ingest.py`` starts it).

    python benchmarks/cstore.py                  # 1,000 instances, 4 a study
    python benchmarks/cstore.py -n 2000 --per-study 10

Both servers get the same number of fresh instances (written once as Part 10 files, different UIDs
per server) after a warm-up of one study. Debian's DCMTK leaves Nagle's algorithm on unless the
environment says ``TCP_NODELAY=1``: without it every instance waits ~40 ms on a delayed ACK (its
command and data PDUs are two small writes), whatever the server, so ``storescu`` runs with it.
ups-server runs the bundled double-reading rules on every instance; the run checks that every study
got its two read workitems. Besides instances/s it reports the CPU each server spent per instance
(ups-server's processes, its PostgreSQL's, Orthanc's: less distorted by a loaded machine than the
rates). Prints ONE JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness

STORESCU = "/usr/bin/storescu"  # DCMTK (Debian dcmtk), not pynetdicom's storescu script


def write_load(directory: Path, studies: int, per_study: int) -> list[str]:
    """Part 10 files of ``studies`` studies under ``directory``; returns the Study Instance UIDs."""
    directory.mkdir(parents=True)
    uids = []
    for k, study in enumerate(harness.make_load(studies, per_study)):
        uids.append(study[0].StudyInstanceUID)
        for n, ds in enumerate(study):
            ds.save_as(directory / f"{k:06d}-{n:03d}.dcm", enforce_file_format=True)
    return uids


def storescu(host: str, port: int, called: str, directory: Path) -> float:
    """Seconds for one ``storescu`` association sending every file of ``directory``."""
    cmd = [STORESCU, "-aet", "BENCH", "-aec", called, "-xe",
           "+sd", host, str(port), str(directory)]
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, env={**os.environ, "TCP_NODELAY": "1"})
    elapsed = time.perf_counter() - started
    if done.returncode != 0 or "Store Failed" in done.stderr or "E:" in done.stderr:
        raise RuntimeError(f"storescu to {called} failed ({done.returncode}): {done.stderr[-2000:]}")
    return elapsed


def measure(tmp: Path, name: str, dimse: tuple[str, int], called: str, pids: list[int], n: int) -> dict[str, Any]:
    """The ``name`` load after the warm-up study: instances/s and CPU ms per instance of ``pids``' trees."""
    storescu(*dimse, called, tmp / f"load-{name}-warm")
    cpu = harness.cpu_seconds(pids, tree=True)
    seconds = storescu(*dimse, called, tmp / f"load-{name}")
    return {"per_s": round(n / seconds, 1), "cpu_ms_per_instance": round(
        (harness.cpu_seconds(pids, tree=True) - cpu) * 1000 / n, 2), "load_average": harness.load_average()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=1000, help="instances per server (default 1000)")
    parser.add_argument("--per-study", type=int, default=4)
    parser.add_argument("--server-args", default="", help="extra `ups-server serve` arguments")
    parser.add_argument("--no-orthanc", action="store_true")
    args = parser.parse_args()
    studies = max(1, args.n // args.per_study)
    tmp = Path(tempfile.mkdtemp(prefix="cstore-bench-"))
    log = open(tmp / "servers.log", "wb")  # noqa: SIM115 - closed in finally
    procs: list[subprocess.Popen] = []
    try:
        studies_of = {}
        for name in ("ups", "orthanc"):
            write_load(tmp / f"load-{name}-warm", 1, args.per_study)
            studies_of[name] = write_load(tmp / f"load-{name}", studies, args.per_study)
        n = studies * args.per_study
        ups = harness.start_ups(tmp, log, extra=args.server_args.split() or None)
        procs.append(ups.proc)
        pg_pid = ups.postgres()[1]
        server, postgres = ups.server_pids(), [pg_pid]
        cpu_pg = harness.cpu_seconds(postgres, tree=True)
        ups_run = measure(tmp, "ups", ups.dimse, "UPS_SERVER", server, n)
        cpu_pg = harness.cpu_seconds(postgres, tree=True) - cpu_pg  # the warm-up study included: small
        result: dict[str, Any] = {
            "benchmark": "cstore", "client": "DCMTK storescu, one association, TCP_NODELAY", "instances": n,
            "per_study": args.per_study, "server_args": args.server_args,
            "ups_server_per_s": ups_run["per_s"], "ups_server_cpu_ms_per_instance": ups_run["cpu_ms_per_instance"],
            "ups_postgres_cpu_ms_per_instance": round(cpu_pg * 1000 / (n + args.per_study), 2),
            "ups_load_average": ups_run["load_average"],
            "studies_with_both_reads": harness.count_reads(ups.http, studies_of["ups"]), "studies": studies,
        }
        harness.stop(ups.proc)
        if not args.no_orthanc and shutil.which(harness.ORTHANC):
            proc, _, dimse = harness.start_orthanc(tmp, log)
            procs.append(proc)
            orthanc = measure(tmp, "orthanc", dimse, "ORTHANC", [proc.pid], n)
            harness.add_reference(result, ups_run, orthanc)
        print(json.dumps(result))
        return 0
    finally:
        for proc in procs:
            harness.stop(proc)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
