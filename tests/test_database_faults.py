"""Database faults recover without a person (issue 11), against ``ups-server serve`` on its own
embedded PostgreSQL: a PostgreSQL in smart shutdown makes /health 503; the postmaster SIGKILLed
under load gives 503 + Retry-After (never 500) until the server has started it again with crash
recovery, without restarting ups-server; every workitem answered 201 is there afterwards. After a
SIGKILL of ups-server, a later clean stop still stops the embedded PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import httpx
import psutil

from .conftest import free_port
from .processes import serve, stop
from .ups_client import new_uid
from .workitems import DICOM_JSON, new_workitem

DEADLINE = 120  # seconds: a guard against hanging, not a timing assertion


def _postmaster(data_dir: Path) -> int:
    return int((data_dir / "pgdata" / "postmaster.pid").read_text().split("\n", 1)[0])


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def _until(predicate, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not await predicate():
        assert time.monotonic() < deadline, f"not within {DEADLINE} s: {what}"
        await asyncio.sleep(0.2)


async def test_postgresql_faults_are_503_and_recover_without_a_person(tmp_path):
    port = free_port()
    process = serve(None, tmp_path, port)
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            # smart shutdown: pooled connections live on, new ones are refused -> /health 503
            pid = _postmaster(tmp_path)
            os.kill(pid, signal.SIGTERM)

            async def health_is(code: int) -> bool:
                return (await http.get("/health")).status_code == code

            await _until(lambda: health_is(503), "/health 503 in smart shutdown")

            # SIGKILL under load: 503 + Retry-After while it is down, then served again
            statuses: list[int] = []
            created: list[str] = []
            stop_load = asyncio.Event()

            async def load() -> None:
                while not stop_load.is_set():
                    uid = new_uid()
                    r = await http.post(f"/dicom-web/workitems?workitem={uid}", json=new_workitem(),
                                        headers=DICOM_JSON)
                    statuses.append(r.status_code)
                    if r.status_code == 201:
                        created.append(uid)
                    else:
                        assert r.status_code == 503 and r.headers["retry-after"], r.text
                    r = await http.get("/dicom-web/workitems?limit=5", headers=DICOM_JSON)
                    assert r.status_code in (200, 204, 503), r.text
                    await asyncio.sleep(0.02)

            loaders = [asyncio.create_task(load()) for _ in range(4)]
            os.kill(pid, signal.SIGKILL)
            await _until(lambda: _async(503 in statuses), "a 503 while PostgreSQL is down")
            await _until(lambda: _async(statuses[-8:] == [201] * 8), "workitems created again")
            stop_load.set()
            await asyncio.gather(*loaders)
            assert process.poll() is None  # ups-server was not restarted
            assert _postmaster(tmp_path) != pid
            assert await health_is(200)
            assert 500 not in statuses
            for uid in created:  # answered 201: committed before the answer
                assert (await http.get(f"/dicom-web/workitems/{uid}", headers=DICOM_JSON)).status_code == 200
    finally:
        stop(process)
    assert _gone(_postmaster_or(tmp_path, pid))  # the clean stop stopped the restarted PostgreSQL


async def test_a_clean_stop_after_a_killed_server_stops_the_embedded_postgresql(tmp_path):
    first = serve(None, tmp_path, free_port())
    first.kill()  # SIGKILL: its pid stays in the cluster's handle list
    first.wait()
    pid = _postmaster(tmp_path)
    assert not _gone(pid)  # still running, shared with the next start
    second = serve(None, tmp_path, free_port())
    handles = json.loads((tmp_path / "pgdata" / ".handle_pids.json").read_text())
    assert first.pid not in handles and second.pid in handles
    stop(second)
    await _until(lambda: _async(_gone(pid)), "the embedded PostgreSQL stopped by the clean stop")


async def _async(value: bool) -> bool:
    return value


def _postmaster_or(data_dir: Path, default: int) -> int:
    try:
        return _postmaster(data_dir)
    except (OSError, ValueError):
        return default
