"""IngestService.store: blob + index, idempotent re-store, bad input refused with IngestError."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from ups_server.db.tables import instances, series, studies
from ups_server.ingest.service import IngestError

from .dicom_instances import instance, part10


async def _count(server, table) -> int:
    async with server.database.engine.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(table))).scalar_one()


async def test_store_bytes_then_again(server):
    ds = instance()
    data = part10(ds)
    first = await server.ingest.store(data, source_ae="MODALITY")
    assert first.stored and first.sop_instance_uid == ds.SOPInstanceUID
    again = await server.ingest.store(data)
    assert again.already_present
    assert await _count(server, instances) == 1
    assert await _count(server, studies) == 1 and await _count(server, series) == 1
    async with server.database.engine.connect() as conn:
        row = (await conn.execute(select(instances))).mappings().one()
    assert row["source_ae"] == "MODALITY"
    assert server.ingest.path_of(row["path"]).read_bytes() == data


async def test_store_dataset_with_file_meta(server):
    ds = instance()
    result = await server.ingest.store(ds, source_ae="SCU", receiving_ae="UPS_SERVER")
    assert result.stored and result.transfer_syntax == "1.2.840.10008.1.2.1"


@pytest.mark.parametrize("mangle", [
    lambda b: b"not dicom at all" * 20,
    lambda b: b[:-5],  # truncated pixel data
    lambda b: b[:200],  # truncated inside the header
])
async def test_bad_input_is_refused(server, mangle):
    with pytest.raises(IngestError) as info:
        await server.ingest.store(mangle(part10(instance())))
    assert info.value.reason
    assert info.value.status in (0xA900, 0xC000)
    assert await _count(server, instances) == 0


async def test_missing_uid_is_a900(server):
    ds = instance()
    del ds.SeriesInstanceUID
    with pytest.raises(IngestError) as info:
        await server.ingest.store(part10(ds))
    assert info.value.status == 0xA900
