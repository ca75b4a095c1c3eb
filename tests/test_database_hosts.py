"""A multi-host PostgreSQL URL with target_session_attrs=read-write (how nodes follow a Patroni
failover): the first host is a live read-only PostgreSQL (as a demoted primary or a standby reports
itself), the second the writable one; two serve processes on that URL write to the writable one and
deliver each other's events through its LISTEN/NOTIFY."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from urllib.parse import quote

import httpx
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from ups_server.db.embedded import EmbeddedPostgres
from ups_server.db.engine import engine_url, make_engine
from ups_server.db.tables import workitems

from .event_clients import EventSocket, free_port
from .events_support import subscribe, ws_url
from .processes import serve, stop
from .workitems import DICOM_JSON, new_workitem

GLOBAL = "1.2.840.10008.5.1.4.34.5"


def _host(url) -> str:
    host = url.host or url.query["host"]
    return f"{host}:{url.port or 5432}"


def test_libpq_multi_host_forms_become_one_host_value_each():
    assert engine_url("postgresql://ups:pw@db1,db2:5433/ups?target_session_attrs=read-write") == (
        "postgresql+asyncpg://ups:pw@/ups?target_session_attrs=read-write&host=db1:5432&host=db2:5433")
    assert engine_url("postgresql://ups@/ups?host=/run/a,/run/b") == (
        "postgresql+asyncpg://ups@/ups?host=/run/a:5432&host=/run/b:5432")
    assert engine_url("postgresql://ups:pw@db1/ups") == "postgresql+asyncpg://ups:pw@db1/ups"


async def test_two_nodes_on_a_multi_host_url_use_the_writable_server(database_url, tmp_path):
    writable = make_url(database_url)
    standby_dir = tempfile.TemporaryDirectory(prefix="ups-test-standby-")  # reachable by the postgres user
    read_only = EmbeddedPostgres(Path(standby_dir.name))
    standby_url = make_url(await asyncio.to_thread(read_only.start))
    processes: list = []
    try:
        admin = make_engine(standby_url.render_as_string(hide_password=False), pool_size=1)
        async with admin.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
            if writable.username != "postgres":
                await conn.execute(text(f'CREATE ROLE "{writable.username}" LOGIN SUPERUSER'))
            await conn.execute(text(f'CREATE DATABASE "{writable.database}"'))
            await conn.execute(text("ALTER SYSTEM SET default_transaction_read_only = on"))
            await conn.execute(text("SELECT pg_reload_conf()"))
        await admin.dispose()

        password = f":{quote(writable.password, safe='')}" if writable.password else ""
        multi = (f"postgresql://{writable.username}{password}@/{writable.database}"
                 f"?host={_host(standby_url)},{_host(writable)}&target_session_attrs=read-write")
        ports = [free_port(), free_port()]
        for n, port in enumerate(ports):
            (tmp_path / f"node{n}").mkdir()
            processes.append(await asyncio.to_thread(serve, multi, tmp_path / f"node{n}", port))
        bases = [f"http://127.0.0.1:{port}/dicom-web" for port in ports]
        workitem = "1.2.826.0.1.3680043.10.15.2"
        async with (httpx.AsyncClient(base_url=bases[0], timeout=30) as a,
                    httpx.AsyncClient(base_url=bases[1], timeout=30) as b,
                    EventSocket(ws_url(bases[1], "NODE_B_WS")) as ws):
            await subscribe(b, GLOBAL, "NODE_B_WS")
            r = await a.post(f"/workitems?{workitem}", json=new_workitem(), headers=DICOM_JSON)
            assert r.status_code == 201, r.text
            assert (await ws.next_for(workitem)).uid == workitem  # node A's change, node B's socket
        engine = make_engine(database_url, pool_size=1)
        async with engine.connect() as conn:
            assert (await conn.execute(select(workitems.c.uid))).scalars().all() == [workitem]
        await engine.dispose()
    finally:
        for process in processes:
            await asyncio.to_thread(stop, process)
        await asyncio.to_thread(read_only.stop)
        standby_dir.cleanup()
