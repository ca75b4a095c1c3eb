"""Black-box fixtures: the installed ``ups-server serve`` as a subprocess on free ports.

The suite tests what ``pip install .`` installed (run from outside the source tree), so a module
missing from the package fails here; it first checks that the installed package is this tree.

``ups_server`` gives one running server (fresh data dir, embedded PostgreSQL) per test;
``start_ups_server`` is the factory behind it for tests that need extra arguments
(``start_ups_server("--rules", path)``), a given data dir (restarts) or several servers.
Every server is stopped with SIGTERM at the end and must exit within ``STOP_TIMEOUT``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
BASE_PATH = "/dicom-web"
REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RunningServer:
    """A started ``ups-server serve`` process and how to reach it."""

    process: subprocess.Popen
    base_url: str  # DICOMweb base, e.g. http://127.0.0.1:41234/dicom-web
    http_port: int
    dimse_port: int
    ae_title: str
    data_dir: Path
    log_path: Path
    args: list[str] = field(default_factory=list)

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else "(no log)"

    def stop(self) -> int:
        """SIGTERM, then wait; fails the test if the server does not exit in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                pytest.fail(f"ups-server did not exit within {STOP_TIMEOUT}s of SIGTERM; log:\n{self.log()}")
        return self.process.returncode


def _wait_healthy(server: RunningServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    last = "no answer"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"ups-server exited with {server.process.returncode} while starting; log:\n{server.log()}")
        try:
            r = httpx.get(f"{server.root_url}/health", timeout=2)
            if r.status_code == 200:
                return
            last = f"{r.status_code} {r.text}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.2)
    server.process.kill()
    server.process.wait()
    pytest.fail(f"ups-server not healthy after {START_TIMEOUT}s (last: {last}); log:\n{server.log()}")


@pytest.fixture(scope="session")
def ups_server_command(tmp_path_factory) -> str:
    """The installed console script, after checking that its package holds this tree's modules."""
    script = shutil.which("ups-server", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    if script is None:
        pytest.fail("no ups-server script: run `pip install .` before the conformance suite")
    probe = subprocess.run([sys.executable, "-c", "import ups_server, sys; sys.stdout.write(ups_server.__file__)"],
                           check=False, cwd=tmp_path_factory.mktemp("probe"), capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.fail(f"ups_server is not installed: run `pip install .` first\n{probe.stderr}")
    installed = Path(probe.stdout).parent
    stale = [str(source.relative_to(REPO)) for source in sorted((REPO / "ups_server").rglob("*.py"))
             if not (installed / source.relative_to(REPO / "ups_server")).is_file()
             or (installed / source.relative_to(REPO / "ups_server")).read_bytes() != source.read_bytes()]
    if stale:
        pytest.fail(f"the installed ups_server ({installed}) differs from this tree in {len(stale)} "
                    f"module(s) ({', '.join(stale[:5])}{', ...' if len(stale) > 5 else ''}): "
                    "run `pip install .` (or fix the package list in pyproject.toml)")
    return script


class ServerStarter:
    """Starts servers (``start``) and stops them all (``stop_all``): behind the fixtures."""

    def __init__(self, tmp_path_factory, command: str):
        self.tmp_path_factory = tmp_path_factory
        self.command = command
        self.started: list[RunningServer] = []

    def start(self, *extra_args: str, data_dir: Path | None = None, ae_title: str = "UPS_SERVER",
              env: dict[str, str] | None = None, dimse_port: int | None = None) -> RunningServer:
        data_dir = Path(data_dir or self.tmp_path_factory.mktemp("ups-data"))
        http_port, dimse_port = free_port(), dimse_port or free_port()
        log_path = data_dir / f"server-{http_port}.log"
        args = [
            self.command, "serve",
            "--data-dir", str(data_dir), "--http-port", str(http_port), "--dimse-port", str(dimse_port),
            "--ae-title", ae_title, "--base-path", BASE_PATH, *extra_args,
        ]
        environ = {k: v for k, v in os.environ.items() if not k.startswith("UPS_")}
        environ.update(env or {})
        with open(log_path, "ab") as log:
            process = subprocess.Popen(args, cwd=data_dir, stdout=log, stderr=subprocess.STDOUT, env=environ)
        server = RunningServer(process, f"http://127.0.0.1:{http_port}{BASE_PATH}", http_port, dimse_port,
                               ae_title, data_dir, log_path, args)
        self.started.append(server)
        _wait_healthy(server)
        return server

    def stop_all(self) -> None:
        failures = []
        for server in reversed(self.started):
            if server.process.poll() is None:
                server.stop()
                if server.process.returncode not in (0, -signal.SIGTERM):
                    failures.append(f"exit code {server.process.returncode}; log:\n{server.log()}")
        if failures:
            pytest.fail("ups-server did not stop cleanly: " + "\n".join(failures))


@pytest.fixture
def start_ups_server(tmp_path_factory, ups_server_command) -> Iterator[Callable[..., RunningServer]]:
    """Factory: ``start_ups_server(*extra_args, data_dir=None, ae_title="UPS_SERVER", dimse_port=None)``."""
    starter = ServerStarter(tmp_path_factory, ups_server_command)
    yield starter.start
    starter.stop_all()


@pytest.fixture(scope="module")
def start_module_server(tmp_path_factory, ups_server_command) -> Iterator[Callable[..., RunningServer]]:
    """``start_ups_server`` for servers shared by the tests of one module."""
    starter = ServerStarter(tmp_path_factory, ups_server_command)
    yield starter.start
    starter.stop_all()


@pytest.fixture
def ups_server(start_ups_server) -> RunningServer:
    """One running server with a fresh data dir (embedded PostgreSQL)."""
    return start_ups_server()
