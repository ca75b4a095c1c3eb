"""Retrieve jobs: instances/s of one study pulled by C-MOVE (from the primary) and by C-GET (from
the secondary), with the same instances sent straight by DCMTK storescu for comparison.

    python benchmarks/retrieve.py [--instances 200] [--ups-server PATH]

Starts two Orthanc archives (Debian's package) and ``ups-server serve`` (embedded PostgreSQL) in a
temp dir, uploads one study of ``--instances`` small Secondary Capture instances to each archive,
queues one retrieve job per study and times it from the POST until the job is ``done`` (the rules
run for every instance, as in production). Prints ONE JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from pydicom.uid import generate_uid

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from conformance.conftest import free_port  # the repository's test helpers
from conformance.orthanc import run_orthanc, upload
from conformance.studies import write_study

FINAL = ("done", "not_found", "failed")


def serve(command: str, root: Path, http: int, dimse: int, vna: int, pacs: int) -> subprocess.Popen:
    data = root / "ups-data"
    data.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("UPS_")}
    log = open(root / "ups-server.log", "wb")  # noqa: SIM115 - kept open for the process
    process = subprocess.Popen([command, "serve", "--data-dir", str(data), "--http-port", str(http), "--dimse-port",
                                str(dimse), "--archive", f"VNA=VNA@127.0.0.1:{vna}",
                                "--archive", f"PACS=PACS@127.0.0.1:{pacs}?method=get"],
                               stdout=log, stderr=subprocess.STDOUT, env=env, cwd=data)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{http}/health", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise SystemExit(f"ups-server did not start; see {root / 'ups-server.log'}")


def timed_job(base: str, study: str) -> dict:
    start = time.monotonic()
    [job] = httpx.post(f"{base}/retrieve-jobs", json={"studies": [study]}, timeout=30).json()["jobs"]
    while (found := httpx.get(f"{base}/retrieve-jobs/{job['id']}", timeout=30).json())["state"] not in FINAL:
        time.sleep(0.05)
    seconds = time.monotonic() - start
    return {"state": found["state"], "archive": found["archive"], "instances": found["instances_retrieved"],
            "seconds": round(seconds, 2), "instances_per_s": round(found["instances_retrieved"] / seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=200, help="instances per study (default 200)")
    parser.add_argument("--ups-server", default=shutil.which("ups-server") or "ups-server",
                        help="the ups-server command (default: on PATH)")
    args = parser.parse_args()
    command = shutil.which(args.ups_server) or args.ups_server
    command = str(Path(command).resolve()) if os.sep in command else command  # the server runs in its data dir
    with tempfile.TemporaryDirectory(prefix="ups-retrieve-bench-") as tmp:
        root = Path(tmp)
        http, dimse = free_port(), free_port()
        me = {"ups": ["UPS_SERVER", "127.0.0.1", dimse]}
        with run_orthanc(root / "vna", "VNA", me) as vna, run_orthanc(root / "pacs", "PACS", me) as pacs:
            moved, got, stored = generate_uid(), generate_uid(), generate_uid()
            upload(vna.url, write_study(root / "moved", moved, count=args.instances))
            upload(pacs.url, write_study(root / "got", got, count=args.instances))
            files = write_study(root / "stored", stored, count=args.instances)
            process = serve(command, root, http, dimse, vna.dicom_port, pacs.dicom_port)
            try:
                base = f"http://127.0.0.1:{http}/dicom-web"
                result = {"instances_per_study": args.instances, "c_move": timed_job(base, moved),
                          "c_get": timed_job(base, got)}
                start = time.monotonic()
                subprocess.run(["/usr/bin/storescu", "-aec", "UPS_SERVER", "127.0.0.1", str(dimse),
                                *map(str, files)], check=True, capture_output=True)
                seconds = time.monotonic() - start
                result["storescu"] = {"seconds": round(seconds, 2), "instances_per_s": round(len(files) / seconds, 1)}
            finally:
                process.send_signal(signal.SIGTERM)
                process.wait(60)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
