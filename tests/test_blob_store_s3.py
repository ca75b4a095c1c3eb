"""Instances in an S3 bucket (moto's server over HTTP): store, retrieve, large instances as multipart
uploads, and the contract of the file store: an object is in the store before its index row
commits, no row names a missing object, objects without a row are removed after the grace period."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from sqlalchemy import func, select

from ups_server.db.engine import make_engine
from ups_server.db.tables import blob_uploads, instances
from ups_server.ingest import uploads
from ups_server.ingest.blobs import MULTIPART_CHUNK

from .dicom_instances import instance, multipart, part10, uid


@pytest.fixture
def settings(settings, bucket):
    settings.blob_store = bucket.url
    return settings


async def _stow(http, parts: list[bytes]):
    body, ctype = multipart(parts)
    return await http.post("/studies", content=body, headers={"Content-Type": ctype})


def _parts(response) -> list[bytes]:
    boundary = response.headers["content-type"].split("boundary=")[1].encode()
    chunks = [c for c in response.content.split(b"--" + boundary) if b"\r\n\r\n" in c]
    return [c.split(b"\r\n\r\n", 1)[1][:-2] for c in chunks]


async def _index(server) -> dict[str, str]:
    async with server.database.engine.connect() as conn:
        rows = await conn.execute(select(instances.c.sop_instance_uid, instances.c.path))
        return dict(rows.all())


async def _pending(server) -> list[str]:
    async with server.database.engine.connect() as conn:
        return list((await conn.execute(select(blob_uploads.c.key))).scalars())


async def test_stow_puts_objects_in_the_bucket_and_wado_reads_them_back(http, server, bucket, tmp_path):
    study, series = uid(), uid()
    sent = [instance(study, series, InstanceNumber=n) for n in (1, 2, 3)]
    r = await _stow(http, [part10(ds) for ds in sent])
    assert r.status_code == 200, r.text

    index = await _index(server)
    assert sorted(index.values()) == bucket.keys()  # one object per row, nothing else
    for ds in sent:
        assert bucket.get(index[ds.SOPInstanceUID]) == part10(ds)
    assert await _pending(server) == []
    assert not list((tmp_path / "blobs").rglob("*.dcm"))  # nothing on the node's disk

    r = await http.get(f"/studies/{study}")
    assert r.status_code == 200
    assert sorted(_parts(r)) == sorted(part10(ds) for ds in sent)
    r = await http.get(f"/studies/{study}/series/{series}/instances/{sent[1].SOPInstanceUID}")
    assert _parts(r) == [part10(sent[1])]


async def test_a_large_instance_goes_up_in_parts_and_streams_back(http, server, bucket):
    big = instance(Rows=3500, Columns=3600)
    big.PixelData = os.urandom(3500 * 3600)  # 12 MiB: three parts of at most 5 MiB
    data = part10(big)
    r = await _stow(http, [data])
    assert r.status_code == 200, r.text

    key = (await _index(server))[big.SOPInstanceUID]
    parts = -(-len(data) // MULTIPART_CHUNK)
    assert parts == 3 and bucket.etag(key).endswith(f"-{parts}")  # S3's ETag of a multipart upload
    chunks = [len(chunk) async for chunk in server.ingest.blobs.read(key)]
    assert sum(chunks) == len(data) and max(chunks) < len(data)  # read in pieces, never whole
    r = await http.get(f"/studies/{big.StudyInstanceUID}")
    [got] = _parts(r)
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    assert pydicom.dcmread(io.BytesIO(got)).SOPInstanceUID == big.SOPInstanceUID


async def test_a_duplicate_leaves_one_object(http, server, bucket):
    ds = instance()
    for _ in range(2):
        assert (await _stow(http, [part10(ds)])).status_code == 200
    assert await server.ingest.store(part10(ds)) is not None  # C-STORE path: already stored
    assert bucket.keys() == [(await _index(server))[ds.SOPInstanceUID]]
    assert await _pending(server) == []


@pytest.mark.parametrize("store", ["file", "s3"])
async def test_an_object_removed_as_orphan_before_its_row_commits_fails_the_store(server, store, tmp_path):
    """Grace too short for a slow store: housekeeping removes the object while its transaction
    waits for the study lock; the transaction then rolls back: no row names a missing object."""
    if store == "file":
        from ups_server.ingest.blobs import FileBlobStore

        server.ingest.blobs = FileBlobStore(tmp_path / "file-blobs")
    ds = instance()
    engine = make_engine(server.settings.database_url, pool_size=1)
    async with engine.connect() as holder:
        await holder.execute(select(func.pg_advisory_xact_lock(func.hashtext(ds.StudyInstanceUID))))
        storing = asyncio.create_task(server.ingest.store(part10(ds)))
        while not await _pending(server) and not storing.done():
            await asyncio.sleep(0.05)
        [key] = await _pending(server)
        while not await server.ingest.blobs.exists(key):  # the put ends before the transaction starts
            await asyncio.sleep(0.05)
        assert await uploads.remove_orphans(server.database.engine, server.ingest.blobs, 0) == [key]
        await holder.rollback()  # the study lock is released: the store goes on
    await engine.dispose()
    with pytest.raises(uploads.UploadLost):
        await storing
    assert await _index(server) == {}
    assert not await server.ingest.blobs.exists(key)
    assert await _pending(server) == []


def test_a_bucket_that_cannot_be_reached_stops_serve_at_start_with_the_reason(settings, bucket, tmp_path):
    args = [sys.executable, "-m", "ups_server", "serve", "--database-url", settings.database_url, "--data-dir",
            str(tmp_path), "--http-port", str(settings.http_port), "--dimse-port", "0",
            "--blob-store", f"s3://no-such-{bucket.name}/instances"]
    out = subprocess.run(args, check=False, cwd=Path(__file__).resolve().parent.parent, capture_output=True,
                         text=True, timeout=120, env={k: v for k, v in os.environ.items() if not k.startswith("UPS_")})
    assert out.returncode != 0
    assert f"the blob store s3://no-such-{bucket.name}/instances cannot be listed" in out.stdout + out.stderr


async def test_deleting_a_study_removes_its_objects_from_the_bucket(http, server, bucket):
    study, other = uid(), uid()
    assert (await _stow(http, [part10(instance(study)), part10(instance(study)), part10(instance(other))])
            ).status_code == 200
    r = await http.delete(f"/studies/{study}")
    assert r.status_code == 200 and r.json()["instances"] == 2
    assert bucket.keys() == list((await _index(server)).values())  # the other study's object alone
    assert await _pending(server) == []
