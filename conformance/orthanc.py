"""Orthanc from Debian's package, started by a test on free loopback ports."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from .conftest import free_port

ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
START_TIMEOUT = 60


@dataclass
class Orthanc:
    url: str  # REST API
    aet: str
    dicom_port: int
    process: subprocess.Popen
    log: Path


@contextlib.contextmanager
def run_orthanc(directory: Path, aet: str = "ORTHANC", modalities: dict[str, list] | None = None,
                dicomweb_servers: dict[str, list[str]] | None = None, verbose: bool = False) -> Iterator[Orthanc]:
    """An Orthanc storing under ``directory``; ``modalities``: its DicomModalities (name ->
    [AET, host, port]), the peers it sends to and accepts queries and retrieves from."""
    if not Path(ORTHANC).exists():
        pytest.skip("Orthanc is not installed (apt-get install orthanc orthanc-dicomweb)")
    directory.mkdir(parents=True, exist_ok=True)
    http_port, dicom_port = free_port(), free_port()
    config = {
        "Name": aet, "StorageDirectory": str(directory / "storage"), "IndexDirectory": str(directory / "storage"),
        "HttpPort": http_port, "DicomPort": dicom_port, "DicomAet": aet, "RemoteAccessAllowed": True,
        "AuthenticationEnabled": False, "DicomModalities": modalities or {},
        "Plugins": [str(DICOMWEB_PLUGIN)] if dicomweb_servers is not None and DICOMWEB_PLUGIN.exists() else [],
    }
    if dicomweb_servers is not None:
        config["DicomWeb"] = {"Enable": True, "Root": "/dicom-web/", "Servers": dicomweb_servers}
    path = directory / "orthanc.json"
    path.write_text(json.dumps(config))
    log = directory / "orthanc.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([ORTHANC, str(path), *(["--verbose"] if verbose else [])], stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{http_port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"Orthanc exited with {process.returncode}:\n{log.read_text(errors='replace')}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/system", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"Orthanc did not start:\n{log.read_text(errors='replace')}")
            time.sleep(0.1)
        yield Orthanc(url, aet, dicom_port, process, log)
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(20)


def upload(orthanc: str, files: list[Path]) -> list[dict]:
    """The files into Orthanc (REST); its answer for each (``ID`` of the instance, ``ParentStudy``...)."""
    return [httpx.post(f"{orthanc}/instances", content=f.read_bytes(), timeout=30).json() for f in files]


def sent_instances(orthanc: Orthanc) -> list[str]:
    """Orthanc's ids of the instances a verbose Orthanc has sent on C-MOVE requests, in order."""
    return re.findall(r"Sending resource ([0-9a-f-]+) to modality", orthanc.log.read_text(errors="replace"))
