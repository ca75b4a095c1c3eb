"""Ingest load: C-STORE and STOW-RS instances/s through ups-server's full rules path, then WADO-RS
of the stored studies, and the same load sent in the same run to an Orthanc from Debian's package
(DICOMweb plugin).

    python benchmarks/ingest.py                       # starts both servers in temp dirs
    python benchmarks/ingest.py --blob-store file,s3  # ups-server once per blob store
    python benchmarks/ingest.py --ups-http http://127.0.0.1:8080/dicom-web \
        --ups-dimse 127.0.0.1:11112                   # a running ups-server (Orthanc still started)

``--blob-store``: comma list of ``file`` (the data directory), ``s3`` (a bucket on moto's S3
server, started on a loopback port: an in-memory Python server, slower than MinIO or AWS) or an
``s3://BUCKET/PREFIX`` URL (the AWS_* environment names the endpoint, e.g. a MinIO).

Each phase sends ``--studies`` studies of ``--per-study`` small Secondary Capture instances
(64x64, 8 bit) from ``--clients`` concurrent clients: C-STORE over one pynetdicom association
per client, STOW-RS as one multipart request per study. ups-server runs its rules on every
instance (default: the bundled double-reading rules, two read workitems per study); the run
checks that every study got its read workitems. Prints ONE JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage
from pynetdicom import AE, evt

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import ORTHANC, free_port, make_load, start_orthanc, start_ups, stop, wait_http

from ups_server.dicom.uids import name_based_uid


def part10(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


# ---- load generators ---------------------------------------------------------------------------


def _nodelay(event: Any) -> None:
    event.assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def cstore(host: str, port: int, called: str, load: list[list[Dataset]], clients: int) -> float:
    """Seconds to C-STORE every instance over ``clients`` concurrent associations."""
    shares: list[list[Dataset]] = [[] for _ in range(clients)]
    for i, study in enumerate(load):
        shares[i % clients].extend(study)
    errors: list[str] = []

    def run(share: list[Dataset], k: int) -> None:
        ae = AE(ae_title=f"BENCH{k}")
        ae.add_requested_context(SecondaryCaptureImageStorage, ExplicitVRLittleEndian)
        assoc = ae.associate(host, port, ae_title=called, evt_handlers=[(evt.EVT_CONN_OPEN, _nodelay)])
        if not assoc.is_established:
            errors.append(f"association {k} to {host}:{port} refused")
            return
        try:
            for ds in share:
                status = assoc.send_c_store(ds)
                if not status or status.Status != 0:
                    errors.append(f"C-STORE status {getattr(status, 'Status', None)}")
        finally:
            assoc.release()

    threads = [threading.Thread(target=run, args=(share, k)) for k, share in enumerate(shares)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"C-STORE to {host}:{port}: {errors[:3]} ({len(errors)} errors)")
    return elapsed


async def stow(base_url: str, load: list[list[Dataset]], clients: int) -> float:
    """Seconds to STOW-RS every study (one multipart request per study), ``clients`` at a time."""
    bodies = []
    for study in load:
        boundary = uuid.uuid4().hex
        body = b"".join(b"--" + boundary.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + part10(ds)
                        + b"\r\n" for ds in study) + b"--" + boundary.encode() + b"--\r\n"
        bodies.append((body, f'multipart/related; type="application/dicom"; boundary={boundary}'))
    sem = asyncio.Semaphore(clients)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:

        async def post(body: bytes, ctype: str) -> None:
            async with sem:
                r = await http.post(f"{base_url.rstrip('/')}/studies", content=body,
                                    headers={"Content-Type": ctype, "Accept": "application/dicom+json"})
                if r.status_code != 200:
                    raise RuntimeError(f"STOW-RS to {base_url}: {r.status_code} {r.text[:200]}")

        start = time.perf_counter()
        await asyncio.gather(*(post(b, c) for b, c in bodies))
        return time.perf_counter() - start


async def wado(base_url: str, load: list[list[Dataset]], clients: int) -> float:
    """Seconds to WADO-RS every study (one request per study, read to the end), ``clients`` at a time."""
    sem = asyncio.Semaphore(clients)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:

        async def get(study: list[Dataset]) -> None:
            async with sem:
                r = await http.get(f"{base_url.rstrip('/')}/studies/{study[0].StudyInstanceUID}",
                                   headers={"Accept": 'multipart/related; type="application/dicom"'})
                if r.status_code != 200 or r.content.lower().count(b"content-type: application/dicom") != len(study):
                    raise RuntimeError(f"WADO-RS from {base_url}: {r.status_code} {r.text[:200]}")

        start = time.perf_counter()
        await asyncio.gather(*(get(study) for study in load))
        return time.perf_counter() - start


# ---- servers -----------------------------------------------------------------------------------


def start_moto(log) -> tuple[subprocess.Popen, str, dict[str, str]]:
    """moto's S3 server on a loopback port with one bucket: (process, blob store URL, environment)."""
    import boto3

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=log)
    wait_http(f"http://127.0.0.1:{port}/moto-api/", proc, "moto server")
    environ = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "bench",
               "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1"}
    boto3.client("s3", endpoint_url=environ["AWS_ENDPOINT_URL"], aws_access_key_id="bench",
                 aws_secret_access_key="bench", region_name="us-east-1").create_bucket(Bucket="ingest-bench")
    return proc, "s3://ingest-bench/instances", environ


def count_reads(ups_http: str, loads: list[list[list[Dataset]]]) -> int:
    """Studies whose two read workitems exist (the rules ran for them)."""
    found = 0
    with httpx.Client(timeout=30) as http:
        for load in loads:
            for study in load:
                uid = study[0].StudyInstanceUID
                codes = [http.get(f"{ups_http}/workitems/{name_based_uid(f'{n}-{uid}')}",
                                  headers={"Accept": "application/dicom+json"}).status_code for n in (1, 2)]
                found += codes == [200, 200]
    return found


def measure(name: str, http: str, dimse: tuple[str, int], called: str, args: argparse.Namespace
            ) -> tuple[dict[str, float], list[list[list[Dataset]]]]:
    n = args.studies * args.per_study
    warm = make_load(2, args.per_study)
    cstore(dimse[0], dimse[1], called, warm, 1)
    asyncio.run(stow(http, make_load(2, args.per_study), 1))
    c_load, s_load = make_load(args.studies, args.per_study), make_load(args.studies, args.per_study)
    c_s = cstore(dimse[0], dimse[1], called, c_load, args.clients)
    s_s = asyncio.run(stow(http, s_load, args.clients))
    w_s = asyncio.run(wado(http, s_load, args.clients))
    return ({"cstore_per_s": round(n / c_s, 1), "stow_per_s": round(n / s_s, 1), "wado_per_s": round(n / w_s, 1)},
            [c_load, s_load])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=int, default=100)
    parser.add_argument("--per-study", type=int, default=4)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--ups-http", help="DICOMweb base URL of a running ups-server (else one is started)")
    parser.add_argument("--ups-dimse", help="host:port of its DIMSE service")
    parser.add_argument("--ups-ae", default="UPS_SERVER")
    parser.add_argument("--no-orthanc", action="store_true")
    parser.add_argument("--blob-store", default="file",
                        help="comma list: file, s3 (moto's server, started here) or s3://BUCKET/PREFIX")
    args = parser.parse_args()
    procs: list[subprocess.Popen] = []
    tmp = Path(tempfile.mkdtemp(prefix="ingest-bench-"))
    log = open(tmp / "servers.log", "wb")  # noqa: SIM115 - closed in finally
    try:
        by_store: dict[str, dict[str, float]] = {}
        if args.ups_http:
            host, port = (args.ups_dimse or "127.0.0.1:11112").rsplit(":", 1)
            ups_http, ups_dimse = args.ups_http.rstrip("/"), (host, int(port))
            ups, loads = measure("ups-server", ups_http, ups_dimse, args.ups_ae, args)
            ups["studies_with_both_reads"] = count_reads(ups_http, loads)
            by_store["running"] = ups
        for store in args.blob_store.split(",") if not args.ups_http else []:
            url, environ = None, {}
            if store == "s3":
                proc, url, environ = start_moto(log)
                procs.append(proc)
            elif store != "file":
                url = store
            ups_proc = start_ups(tmp, log, url, environ)
            proc, ups_http, ups_dimse = ups_proc.proc, ups_proc.http, ups_proc.dimse
            procs.append(proc)
            ups, loads = measure("ups-server", ups_http, ups_dimse, args.ups_ae, args)
            ups["studies_with_both_reads"] = count_reads(ups_http, loads)
            by_store[store] = ups
            stop(proc)
        ups = next(iter(by_store.values()))
        result: dict[str, Any] = {
            "benchmark": "ingest", "instances_per_phase": args.studies * args.per_study,
            "per_study": args.per_study, "clients": args.clients, "ups_server": ups,
        }
        if len(by_store) > 1:
            result["ups_server_by_blob_store"] = by_store
        if not args.no_orthanc and shutil.which(ORTHANC):
            proc, o_http, o_dimse = start_orthanc(tmp, log)
            procs.append(proc)
            orthanc, _ = measure("orthanc", o_http, o_dimse, "ORTHANC", args)
            result["orthanc"] = orthanc
            result["ratio_ups_over_orthanc"] = {
                phase: round(ups[f"{phase}_per_s"] / orthanc[f"{phase}_per_s"], 2) for phase in ("cstore", "stow", "wado")
            }
        print(json.dumps(result))
        return 0
    finally:
        for proc in procs:
            stop(proc)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
