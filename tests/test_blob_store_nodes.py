"""Server nodes on one PostgreSQL and one bucket (moto's S3 server): what one node stores, another
retrieves; a node killed between the put and the commit leaves no row without its object, and the
orphan object is removed by housekeeping later."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import func, select

from ups_server.db.engine import make_engine
from ups_server.db.tables import blob_uploads, instances

from .dicom_instances import instance, multipart, part10, uid
from .event_clients import free_port
from .metrics_client import sample, scrape
from .processes import serve, stop


async def _stow(http: httpx.AsyncClient, parts: list[bytes]) -> httpx.Response:
    body, ctype = multipart(parts)
    return await http.post("/studies", content=body, headers={"Content-Type": ctype})


def _parts(response: httpx.Response) -> list[bytes]:
    boundary = response.headers["content-type"].split("boundary=")[1].encode()
    chunks = [c for c in response.content.split(b"--" + boundary) if b"\r\n\r\n" in c]
    return [c.split(b"\r\n\r\n", 1)[1][:-2] for c in chunks]


class Node:
    """One ``ups-server serve`` with its own data directory, on the shared database and bucket."""

    def __init__(self, database_url: str, data_dir, bucket_url: str, *options: str):
        self.port = free_port()
        data_dir.mkdir()
        self.process = serve(database_url, data_dir, self.port, "--blob-store", bucket_url, *options)
        self.http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}/dicom-web", timeout=60)

    async def close(self) -> None:
        await self.http.aclose()
        await asyncio.to_thread(stop, self.process)


@pytest.fixture
async def nodes(settings, bucket, tmp_path) -> AsyncIterator[list[Node]]:
    started: list[Node] = []

    async def start(*options: str) -> Node:
        node = await asyncio.to_thread(Node, settings.database_url, tmp_path / f"node{len(started)}", bucket.url,
                                       *options)
        started.append(node)
        return node

    yield start  # type: ignore[misc]
    for node in started:
        await node.close()


async def _rows(database_url: str) -> tuple[dict[str, str], list[str]]:
    """The index (SOP Instance UID -> key) and the keys of uploads not yet indexed."""
    engine = make_engine(database_url, pool_size=1)
    async with engine.connect() as conn:
        index = dict((await conn.execute(select(instances.c.sop_instance_uid, instances.c.path))).all())
        pending = list((await conn.execute(select(blob_uploads.c.key))).scalars())
    await engine.dispose()
    return index, pending


async def test_stow_on_one_node_wado_on_the_other(nodes, settings, bucket):
    a, b = await nodes(), await nodes()
    study = uid()
    first = [instance(study, InstanceNumber=n) for n in (1, 2)]
    assert (await _stow(a.http, [part10(ds) for ds in first])).status_code == 200
    r = await b.http.get(f"/studies/{study}")
    assert r.status_code == 200 and sorted(_parts(r)) == sorted(part10(ds) for ds in first)
    found = (await b.http.get(f"/studies/{study}/instances")).json()
    assert len(found) == 2

    second = instance(study, InstanceNumber=3)
    assert (await _stow(b.http, [part10(second)])).status_code == 200
    r = await a.http.get(f"/studies/{study}/series/{second.SeriesInstanceUID}/instances/{second.SOPInstanceUID}")
    assert _parts(r) == [part10(second)]
    index, pending = await _rows(settings.database_url)
    assert sorted(index.values()) == bucket.keys() and pending == []

    # each node's metrics show its part; the shared queues read the same on both
    ma, mb = [await scrape(node.http, str(node.http.base_url)) for node in (a, b)]
    assert sample(ma, "ups_ingest_instances_total", outcome="stored") == 2
    assert sample(mb, "ups_ingest_instances_total", outcome="stored") == 1
    assert sample(mb, "ups_ingest_bytes_total") == len(part10(second))
    assert sample(mb, "ups_http_requests_total", method="GET", route="/studies/{study}", status="200") == 1
    assert sample(ma, "ups_http_requests_total", method="GET", status="200",
                  route="/studies/{study}/series/{series}/instances/{instance}") == 1
    assert ("ups_http_requests_total", ("method", "GET"), ("route", "/studies/{study}"), ("status", "200")) not in ma
    for rule in ("first-read", "second-read"):  # A's store made the reads, B's added to them
        assert sample(ma, "ups_rule_effects_total", rule=rule, effect="created") == 1
        assert sample(mb, "ups_rule_effects_total", rule=rule, effect="appended") == 1
    for m in (ma, mb):
        assert sample(m, "ups_jobs", queue="blob_uploads", state="unindexed") == 0


async def test_a_node_killed_mid_stow_leaves_an_orphan_that_housekeeping_removes(nodes, settings, bucket):
    a = await nodes()
    ds = instance()
    data = part10(ds)
    # the test holds the study's lock: node A puts the object, then waits to index it
    engine = make_engine(settings.database_url, pool_size=1)
    async with engine.connect() as holder:
        await holder.execute(select(func.pg_advisory_xact_lock(func.hashtext(ds.StudyInstanceUID))))
        storing = asyncio.create_task(_stow(a.http, [data]))
        deadline = time.monotonic() + 60
        while not bucket.keys():
            assert time.monotonic() < deadline and not storing.done(), "the object never reached the bucket"
            await asyncio.sleep(0.1)
        a.process.kill()  # SIGKILL: no cleanup of any kind
        await asyncio.to_thread(a.process.wait, 30)
        with contextlib.suppress(httpx.HTTPError):
            await storing
        await holder.rollback()
    await engine.dispose()

    index, pending = await _rows(settings.database_url)
    [orphan] = bucket.keys()
    assert index == {} and pending == [orphan]  # no row without its object; the orphan is recorded

    # a grace of 0 makes every upload record an orphan at once, a store of this node's under way
    # too (it then fails, 0110): B only sweeps, and stops before the sender retries
    b = await nodes("--blob-orphan-grace", "0", "--housekeeping-interval", "1")
    deadline = time.monotonic() + 60
    while bucket.keys():
        assert time.monotonic() < deadline, "housekeeping did not remove the orphan object"
        await asyncio.sleep(0.2)
    assert (await _rows(settings.database_url))[1] == []
    await b.close()

    c = await nodes()
    r = await _stow(c.http, [data])  # the sender retries on another node
    assert r.status_code == 200, r.text
    index, pending = await _rows(settings.database_url)
    assert bucket.keys() == [index[ds.SOPInstanceUID]] and pending == []
    assert _parts(await c.http.get(f"/studies/{ds.StudyInstanceUID}")) == [data]
