"""Broken instances are refused over both protocols (issue 11): declared lengths against the data,
Pixel Data complete, deflated instances within the inflate limits, STOW parts within the part
limit. Whatever is answered Success over C-STORE is read back whole over WADO-RS."""

from __future__ import annotations

import asyncio
import io
import random
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom import _config as pynetdicom_config
from pynetdicom.sop_class import SecondaryCaptureImageStorage
from sqlalchemy import func, select

from ups_server.db.tables import instances

from .dicom_instances import instance, multipart, part10, uid

pytestmark = pytest.mark.dimse

A700, A900, C000 = 0xA700, 0xA900, 0xC000


def _c_store(server, items: list, syntax: str = ExplicitVRLittleEndian) -> list[tuple[int, str | None]]:
    """(status, Error Comment) of each C-STORE; an item is a Dataset or a Part 10 file sent as it is
    (STORE_SEND_CHUNKED_DATASET: pynetdicom sends the file's bytes without decoding them)."""
    pynetdicom_config.STORE_SEND_CHUNKED_DATASET = True
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(SecondaryCaptureImageStorage, [syntax])
    assoc = ae.associate(*server.dimse.address, ae_title="UPS_SERVER")
    assert assoc.is_established
    try:
        out = []
        for item in items:
            rsp = assoc.send_c_store(item)
            out.append((int(rsp.Status), rsp.get("ErrorComment")))
        return out
    finally:
        assoc.release()
        pynetdicom_config.STORE_SEND_CHUNKED_DATASET = False


def _short_pixel_data_file(path: Path, missing: int = 600) -> Path:
    """A Part 10 file whose Pixel Data ends ``missing`` bytes before its declared length."""
    ds = instance(uid(), uid(), Rows=64, Columns=64)
    ds.PixelData = bytes(64 * 64)
    path.write_bytes(part10(ds)[:-missing])
    return path


def _undersized_image():
    """Pixel Data whose length is consistent but holds 16 bytes of a 64 x 64 image."""
    return instance(uid(), uid(), Rows=64, Columns=64)


def _deflate_bomb():
    """4 MB of zeros: deflated about 1,000 times smaller."""
    ds = instance(uid(), uid(), Rows=2048, Columns=2048)
    ds.PixelData = bytes(2048 * 2048)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    return ds


async def _count(server) -> int:
    async with server.database.engine.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(instances))).scalar_one()


async def test_c_store_refuses_pixel_data_shorter_than_declared(server, tmp_path):
    path = _short_pixel_data_file(tmp_path / "short.dcm")
    [(status, comment)] = await asyncio.to_thread(_c_store, server, [str(path)])
    assert status == C000 and comment.startswith("truncated: element (7FE0,0010) has ")
    assert await _count(server) == 0


async def test_stow_and_c_store_refuse_an_incomplete_image(server, http):
    [(status, comment)] = await asyncio.to_thread(_c_store, server, [_undersized_image()])
    assert status == A900 and "Pixel Data holds 16 of the image's 4096 bytes" == comment
    body, ctype = multipart([part10(_undersized_image())])
    r = await http.post("/studies", content=body, headers={"Content-Type": ctype})
    assert r.status_code == 409
    assert r.json()["00081198"]["Value"][0]["00081197"]["Value"] == [A900]
    assert await _count(server) == 0


async def test_a_deflate_bomb_is_refused_over_both_protocols_and_a_normal_deflated_instance_is_stored(server, http):
    server.ingest.inflate = type(server.ingest.inflate)(max_size=2**30, max_ratio=100)
    [(status, comment)] = await asyncio.to_thread(_c_store, server, [_deflate_bomb()], DeflatedExplicitVRLittleEndian)
    assert status == A700 and "inflates past" in comment
    body, ctype = multipart([part10(_deflate_bomb())])
    r = await http.post("/studies", content=body, headers={"Content-Type": ctype})
    assert r.status_code == 409
    assert r.json()["00081198"]["Value"][0]["00081197"]["Value"] == [A700]
    assert await _count(server) == 0
    plain = instance(uid(), uid())
    plain.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    [(status, _)] = await asyncio.to_thread(_c_store, server, [plain], DeflatedExplicitVRLittleEndian)
    assert status == 0x0000


async def test_a_stow_part_over_the_part_limit_fails_alone(server, http):
    server.settings.max_stow_part_size = 2000
    small, big = instance(uid(), uid()), instance(uid(), uid(), Rows=64, Columns=64)
    big.PixelData = bytes(64 * 64)
    body, ctype = multipart([part10(small), part10(big)])
    r = await http.post("/studies", content=body, headers={"Content-Type": ctype})
    assert r.status_code == 202, r.text
    [failed] = r.json()["00081198"]["Value"]
    assert failed["00081197"]["Value"] == [A700]
    assert [s["00081155"]["Value"] for s in r.json()["00081199"]["Value"]] == [[small.SOPInstanceUID]]
    assert not list((server.settings.data_dir / "blobs" / ".tmp").iterdir())  # spool files removed


def _corrupt_files(tmp_path: Path, count: int = 40) -> list[Path]:
    """Seeded byte flips and cuts of valid Part 10 files, in the dataset (the File Meta stays readable)."""
    rng = random.Random(11)
    files = []
    for n in range(count):
        ds = instance(uid(), uid(), Rows=16, Columns=16)
        ds.PixelData = bytes(rng.randrange(256) for _ in range(256))
        data = bytearray(part10(ds))
        start = 144 + int.from_bytes(data[140:144], "little")  # the dataset, after the File Meta group
        if n % 2:
            del data[rng.randrange(start, len(data)):]
        for _ in range(rng.randrange(1, 6)):
            data[rng.randrange(start, len(data))] = rng.randrange(256)
        path = tmp_path / f"{n}.dcm"
        path.write_bytes(bytes(data))
        files.append(path)
    return files


async def _served_whole(http, path: Path) -> None:
    sent = dcmread(path, force=True)
    r = await http.get(f"/studies/{sent.StudyInstanceUID}/series/{sent.SeriesInstanceUID}/instances/"
                       f"{sent.SOPInstanceUID}")
    assert r.status_code == 200
    assert len(dcmread(io.BytesIO(r.content.split(b"\r\n\r\n", 1)[1])).PixelData) == 256


async def test_corrupt_part10_files_over_c_store_are_refused_or_read_back_whole(server, http, tmp_path):
    """Every answer is a DICOM status (never the handler-raised C211), and every instance
    answered Success is served whole by WADO-RS."""
    files = _corrupt_files(tmp_path)
    results = await asyncio.to_thread(_c_store, server, [str(p) for p in files])
    assert all(status != 0xC211 for status, _ in results), results
    for path, (status, _) in zip(files, results, strict=True):
        if status == 0x0000:
            await _served_whole(http, path)


async def test_corrupt_part10_files_over_stow_are_refused_or_read_back_whole(server, http, tmp_path):
    for path in _corrupt_files(tmp_path):
        body, ctype = multipart([path.read_bytes()])
        r = await http.post("/studies", content=body, headers={"Content-Type": ctype})
        assert r.status_code in (200, 400, 409), r.text
        if r.status_code == 200:
            await _served_whole(http, path)


async def test_stow_refuses_a_large_value_cut_short(server, http):
    """A value over DEFER_SIZE is checked against the file's size, not read: cut short, it is refused."""
    ds = instance(uid(), uid(), Rows=1500, Columns=1500)
    ds.PixelData = bytes(1500 * 1500)
    body, ctype = multipart([part10(ds)[:-600]])
    r = await http.post("/studies", content=body, headers={"Content-Type": ctype})
    assert r.status_code == 400, r.text
    assert await _count(server) == 0
