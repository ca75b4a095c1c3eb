"""``ups-server serve`` as a subprocess on the test database: for races and deliveries across
processes, and for killing a server outright."""

from __future__ import annotations

import contextlib
import os
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent


def serve(database_url: str | None, data_dir: Path, port: int, *extra: str, ca: Path | None = None) -> subprocess.Popen:
    """A started server (HTTP on ``port``, no DIMSE unless ``extra`` flags ask), healthy before this
    returns; with ``ca`` it serves HTTPS with a certificate that CA signed; without a database URL
    on its own embedded PostgreSQL in ``data_dir``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("UPS_")}
    log = data_dir / f"serve-{port}.log"
    args = [sys.executable, "-m", "ups_server", "serve", *(["--database-url", database_url] if database_url else []),
            "--data-dir", str(data_dir), "--http-port", str(port), "--dimse-port", "0", *extra]
    with open(log, "ab") as out:
        process = subprocess.Popen(args, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        with contextlib.suppress(httpx.HTTPError):
            url = f"{'https' if ca else 'http'}://127.0.0.1:{port}/health"
            if httpx.get(url, timeout=2, verify=ssl.create_default_context(cafile=str(ca)) if ca else True).status_code == 200:
                return process
        time.sleep(0.1)
    process.kill()
    raise AssertionError(f"server not healthy; log:\n{log.read_text()}")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        process.wait(30)
