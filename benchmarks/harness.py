"""Helpers the benchmarks share: free ports, starting and stopping ups-server and Orthanc, the
embedded PostgreSQL a started ups-server runs on, CPU seconds of process trees, and pgbench as the
reference for what that PostgreSQL does on this machine in the same run."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psutil
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ORTHANC = "/usr/sbin/Orthanc"
ORTHANC_PLUGINS = "/usr/share/orthanc/plugins"


def new_uid() -> str:
    return f"2.25.{uuid.uuid4().int}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not answer {url} within {timeout}s")


class Ups:
    """A ``ups-server serve`` started on loopback ports with its own data directory (embedded PostgreSQL)."""

    def __init__(self, proc: subprocess.Popen, data_dir: Path, http_port: int, dimse_port: int):
        self.proc, self.data_dir = proc, data_dir
        self.http = f"http://127.0.0.1:{http_port}/dicom-web"
        self.dimse = ("127.0.0.1", dimse_port)

    def postgres(self) -> tuple[str, int]:
        """(socket directory, postmaster pid) of the embedded PostgreSQL the server runs on."""
        pgdata = self.data_dir / "pgdata"
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
        opts = (pgdata / "postmaster.opts").read_text()
        found = re.search(r'"-k"\s+"([^"]+)"', opts) or re.search(r"unix_socket_directories=([^\s\"']+)", opts)
        socket_dir = found.group(1) if found else _socket_dir_of(pid)
        return socket_dir, pid

    def server_pids(self) -> list[int]:
        """The server's own processes (its tree without PostgreSQL's)."""
        return [p.pid for p in [psutil.Process(self.proc.pid), *psutil.Process(self.proc.pid).children(True)]
                if not p.name().startswith("postgres")]


def _socket_dir_of(pid: int) -> str:
    for conn in psutil.Process(pid).net_connections(kind="unix"):
        if conn.laddr and ".s.PGSQL." in conn.laddr:
            return str(Path(conn.laddr).parent)
    raise RuntimeError("no Unix socket of the embedded PostgreSQL found")


def start_ups(tmp: Path, log, blob_store: str | None = None, environ: dict[str, str] | None = None,
              extra: list[str] | None = None, root: Path = ROOT, data_dir: Path | None = None) -> Ups:
    """``python -m ups_server serve`` of the checkout at ``root`` (default: this one), its data in
    ``data_dir`` (default: a new directory under ``tmp``)."""
    http_port, dimse_port = free_port(), free_port()
    data_dir = data_dir or tmp / f"ups-{http_port}"
    cmd = [sys.executable, "-m", "ups_server", "serve", "--data-dir", str(data_dir),
           "--host", "127.0.0.1", "--http-port", str(http_port), "--dimse-port", str(dimse_port),
           "--log-level", "WARNING", *(["--blob-store", blob_store] if blob_store else []), *(extra or [])]
    proc = subprocess.Popen(cmd, stdout=log, stderr=log, cwd=root, env={**os.environ, **(environ or {})})
    wait_http(f"http://127.0.0.1:{http_port}/health", proc, "ups-server")
    return Ups(proc, data_dir, http_port, dimse_port)


def wait_workers(url: str, workers: int, timeout: float = 120) -> None:
    """Until ``workers`` distinct processes of a ``serve --workers N`` at ``url`` have answered
    /health (each worker is ready; one ready worker already answers)."""
    root = urlsplit(url)
    pids: set[int] = set()
    deadline = time.monotonic() + timeout
    while len(pids) < workers:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(pids)} of {workers} workers answered within {timeout}s")
        r = httpx.get(f"{root.scheme}://{root.netloc}/health", timeout=5)
        if r.status_code == 200:
            pids.add(r.json()["pid"])
        time.sleep(0.05)


def start_orthanc(tmp: Path, log) -> tuple[subprocess.Popen, str, tuple[str, int]]:
    http_port, dimse_port = free_port(), free_port()
    storage = tmp / "orthanc"
    storage.mkdir()
    config = {
        "Name": "bench", "StorageDirectory": str(storage), "IndexDirectory": str(storage),
        "HttpPort": http_port, "DicomPort": dimse_port, "DicomAet": "ORTHANC", "RemoteAccessAllowed": True,
        "AuthenticationEnabled": False, "DicomCheckCalledAet": False, "Plugins": [ORTHANC_PLUGINS],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"}, "StorageCompression": False,
    }
    path = tmp / "orthanc.json"
    path.write_text(json.dumps(config))
    proc = subprocess.Popen([ORTHANC, str(path)], stdout=log, stderr=log)
    wait_http(f"http://127.0.0.1:{http_port}/system", proc, "Orthanc")
    return proc, f"http://127.0.0.1:{http_port}/dicom-web", ("127.0.0.1", dimse_port)


def stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def add_reference(result: dict, ups_run: dict, reference: dict, name: str = "orthanc") -> None:
    """The reference server's rate, CPU per instance and load beside ups-server's, and the ratio."""
    result[f"{name}_per_s"] = reference["per_s"]
    result[f"{name}_cpu_ms_per_instance"] = reference["cpu_ms_per_instance"]
    result[f"{name}_load_average"] = reference["load_average"]
    result[f"ratio_ups_over_{name}"] = round(ups_run["per_s"] / reference["per_s"], 3)


def cpu_seconds(pids: list[int], tree: bool = False) -> float:
    """User + system CPU seconds of ``pids`` (and, with ``tree``, of all their descendants, the ones
    that have exited too: a PostgreSQL backend closed by the client's pool is reaped by the postmaster,
    which then counts its CPU as its children's) so far."""
    total = 0.0
    for pid in pids:
        try:
            root = psutil.Process(pid)
            if tree:
                t = root.cpu_times()
                total += t.children_user + t.children_system
            for p in [root, *(root.children(True) if tree else [])]:
                t = p.cpu_times()
                total += t.user + t.system
        except psutil.Error:
            pass
    return total


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def pgbench_tps(socket_dir: str, seconds: int = 10, clients: int = 8, threads: int = 2,
                user: str = "postgres") -> float:
    """``pgbench -N -c clients -j threads`` tps on the PostgreSQL at ``socket_dir`` (a scratch database)."""
    env = {**os.environ, "PGHOST": socket_dir, "PGUSER": user}
    subprocess.run(["psql", "-q", "-d", "postgres", "-c", "DROP DATABASE IF EXISTS pgbench_ref",
                    "-c", "CREATE DATABASE pgbench_ref"], env=env, check=True, capture_output=True)
    subprocess.run(["pgbench", "-i", "-q", "-s", "1", "pgbench_ref"], env=env, check=True, capture_output=True)
    out = subprocess.run(["pgbench", "-N", "-c", str(clients), "-j", str(threads), "-T", str(seconds), "pgbench_ref"],
                         env=env, check=True, capture_output=True, text=True).stdout
    subprocess.run(["psql", "-q", "-d", "postgres", "-c", "DROP DATABASE pgbench_ref"], check=False, env=env,
                   capture_output=True)
    return float(re.search(r"tps = ([\d.]+)", out).group(1))


def count_reads(http: str, study_uids: list[str]) -> int:
    """Studies whose two read workitems exist on the ups-server at ``http`` (the rules ran for them)."""
    from ups_server.dicom.uids import name_based_uid

    found = 0
    with httpx.Client(timeout=30) as client:
        for uid in study_uids:
            codes = [client.get(f"{http}/workitems/{name_based_uid(f'{n}-{uid}')}",
                                headers={"Accept": "application/dicom+json"}).status_code for n in (1, 2)]
            found += codes == [200, 200]
    return found


def make_instance(study: str, series: str, n: int) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = new_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.PatientName, ds.PatientID = "Bench^Patient", f"BENCH-{study[-6:]}"
    ds.AccessionNumber, ds.StudyDate, ds.StudyTime, ds.StudyID = f"A{study[-8:]}", "20261123", "101010", "1"
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "OT", 1, n
    ds.Rows = ds.Columns = 64
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation, ds.SamplesPerPixel = 7, 0, 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = os.urandom(64 * 64)
    return ds


def make_load(studies: int, per_study: int) -> list[list[Dataset]]:
    out = []
    for _ in range(studies):
        study, series = new_uid(), new_uid()
        out.append([make_instance(study, series, n + 1) for n in range(per_study)])
    return out
