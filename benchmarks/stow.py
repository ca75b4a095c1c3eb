"""STOW-RS instances/s: 4 client processes, one request per study of 25 small instances, against
ups-server through its full rules path and, in the same run, against an Orthanc from Debian's
package with its DICOMweb plugin (started as ``benchmarks/cstore.py`` starts it).

    python benchmarks/stow.py                        # 40 studies of 25 instances per server
    python benchmarks/stow.py --studies 80 --processes 4 --per-study 25
    python benchmarks/stow.py --workers 2            # ups-server with two HTTP worker processes

Each server gets its own fresh studies (bodies encoded once, before the clock starts) after a
warm-up of one study per client process; each process sends its share one request at a time over
one keep-alive connection. ups-server runs the bundled double-reading rules on every instance; the
run checks that every study got its two read workitems. Besides instances/s it reports the CPU each
server spent per instance (ups-server's processes, its PostgreSQL's, Orthanc's: less distorted by
a loaded machine than the rates). With ``--workers N`` the clock starts once every worker answers:
a worker still starting would count its start-up (imports) as CPU per instance. Prints ONE JSON line.
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness


def write_bodies(directory: Path, studies: int, per_study: int) -> list[str]:
    """One multipart/related body per study under ``directory`` (``NNNNNN.<boundary>``); the Study UIDs."""
    directory.mkdir(parents=True)
    uids = []
    for k, study in enumerate(harness.make_load(studies, per_study)):
        uids.append(study[0].StudyInstanceUID)
        boundary = uuid.uuid4().hex
        parts = []
        for ds in study:
            buf = io.BytesIO()
            ds.save_as(buf, enforce_file_format=True)
            parts.append(b"--" + boundary.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + buf.getvalue()
                         + b"\r\n")
        (directory / f"{k:06d}.{boundary}").write_bytes(b"".join(parts) + b"--" + boundary.encode() + b"--\r\n")
    return uids


def client(url: str, bodies: list[str], go: Any, out: Any) -> None:
    """One client process: after ``go``, POST each body in turn; puts its error messages on ``out``."""
    errors: list[str] = []
    with httpx.Client(timeout=300) as http:
        http.get(url.rsplit("/", 1)[0] + "/", timeout=30)  # open the connection
        go.wait()
        for path in bodies:
            boundary = path.rsplit(".", 1)[1]
            r = http.post(f"{url}/studies", content=Path(path).read_bytes(), headers={
                "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
                "Accept": "application/dicom+json"})
            if r.status_code != 200:
                errors.append(f"{r.status_code} {r.text[:200]}")
    out.put(errors)


def send(url: str, directory: Path, processes: int) -> float:
    """Seconds for ``processes`` client processes to STOW every body of ``directory``."""
    bodies = sorted(str(p) for p in directory.iterdir())
    ctx = multiprocessing.get_context("spawn")
    go, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=client, args=(url, bodies[k::processes], go, out)) for k in range(processes)]
    for proc in procs:
        proc.start()
    time.sleep(2)  # the processes import and connect
    started = time.perf_counter()
    go.set()
    errors = [e for _ in procs for e in out.get()]
    elapsed = time.perf_counter() - started
    for proc in procs:
        proc.join()
    if errors:
        raise RuntimeError(f"STOW-RS to {url}: {errors[:3]} ({len(errors)} failed requests)")
    return elapsed


def measure(tmp: Path, name: str, url: str, pids: list[int], n: int, processes: int, tree: bool) -> dict[str, Any]:
    """``tree``: count the descendants of ``pids`` too (not for ups-server's ``server_pids()``, which
    lists its worker processes already: counted twice, ``--workers 2`` looked twice as costly)."""
    send(url, tmp / f"load-{name}-warm", processes)
    cpu = harness.cpu_seconds(pids, tree=tree)
    seconds = send(url, tmp / f"load-{name}", processes)
    return {"per_s": round(n / seconds, 1), "cpu_ms_per_instance": round(
        (harness.cpu_seconds(pids, tree=tree) - cpu) * 1000 / n, 2), "load_average": harness.load_average()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=int, default=40, help="studies per server (default 40)")
    parser.add_argument("--per-study", type=int, default=25, help="instances per study and request (default 25)")
    parser.add_argument("--processes", type=int, default=4, help="client processes (default 4)")
    parser.add_argument("--workers", type=int, default=1, help="ups-server HTTP worker processes (default 1)")
    parser.add_argument("--server-args", default="", help="extra `ups-server serve` arguments")
    parser.add_argument("--no-orthanc", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="stow-bench-"))
    log = open(tmp / "servers.log", "wb")  # noqa: SIM115 - closed in finally
    procs: list[subprocess.Popen] = []
    n = args.studies * args.per_study
    try:
        studies_of = {}
        for name in ("ups", "orthanc"):
            write_bodies(tmp / f"load-{name}-warm", args.processes, args.per_study)
            studies_of[name] = write_bodies(tmp / f"load-{name}", args.studies, args.per_study)
        ups = harness.start_ups(tmp, log, extra=["--workers", str(args.workers), *args.server_args.split()])
        harness.wait_workers(ups.http, args.workers)
        procs.append(ups.proc)
        postgres = [ups.postgres()[1]]
        cpu_pg = harness.cpu_seconds(postgres, tree=True)
        ups_run = measure(tmp, "ups", ups.http, ups.server_pids(), n, args.processes, tree=False)
        cpu_pg = harness.cpu_seconds(postgres, tree=True) - cpu_pg  # the warm-up included: small
        result: dict[str, Any] = {
            "benchmark": "stow", "client": f"{args.processes} processes, one request per study", "instances": n,
            "per_study": args.per_study, "workers": args.workers, "server_args": args.server_args,
            "ups_server_per_s": ups_run["per_s"], "ups_server_cpu_ms_per_instance": ups_run["cpu_ms_per_instance"],
            "ups_postgres_cpu_ms_per_instance": round(cpu_pg * 1000 / (n + args.processes * args.per_study), 2),
            "ups_load_average": ups_run["load_average"],
            "studies_with_both_reads": harness.count_reads(ups.http, studies_of["ups"]), "studies": args.studies,
        }
        harness.stop(ups.proc)
        if not args.no_orthanc and shutil.which(harness.ORTHANC):
            proc, orthanc_http, _ = harness.start_orthanc(tmp, log)
            procs.append(proc)
            orthanc = measure(tmp, "orthanc", orthanc_http, [proc.pid], n, args.processes, tree=True)
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
