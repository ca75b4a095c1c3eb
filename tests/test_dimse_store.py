"""C-ECHO and C-STORE on the DIMSE server (real pynetdicom associations): instances reach
``server.ingest`` with the calling AE and host; refused instances get the ingest's status."""

from __future__ import annotations

import asyncio
import socket

import pytest
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.sop_class import SecondaryCaptureImageStorage, Verification
from sqlalchemy import select

from ups_server.db.tables import instances

from .dicom_instances import instance

pytestmark = pytest.mark.dimse


def _store(address: tuple[str, int], datasets, transfer_syntax: str, calling: str = "MODALITY") -> list[int]:
    ae = AE(ae_title=calling)
    ae.add_requested_context(SecondaryCaptureImageStorage, [transfer_syntax])
    assoc = ae.associate(*address, ae_title="UPS_SERVER")
    assert assoc.is_established
    try:
        return [int(assoc.send_c_store(ds).Status) for ds in datasets]
    finally:
        assoc.release()


async def test_c_echo(server):
    def echo() -> int:
        ae = AE(ae_title="ECHOSCU")
        ae.add_requested_context(Verification)
        assoc = ae.associate(*server.dimse.address, ae_title="UPS_SERVER")
        try:
            return int(assoc.send_c_echo().Status)
        finally:
            assoc.release()

    assert await asyncio.to_thread(echo) == 0x0000


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian])
async def test_c_store_reaches_ingest(server, syntax):
    datasets = [instance() for _ in range(2)]
    statuses = await asyncio.to_thread(_store, server.dimse.address, datasets, syntax)
    assert statuses == [0x0000, 0x0000]
    async with server.ups.engine.connect() as conn:
        rows = (await conn.execute(select(instances.c.sop_instance_uid, instances.c.source_ae)
                                   .where(instances.c.sop_instance_uid.in_([d.SOPInstanceUID for d in datasets]))
                                   )).all()
    assert {r.sop_instance_uid for r in rows} == {d.SOPInstanceUID for d in datasets}
    assert {r.source_ae for r in rows} == {"MODALITY"}


async def test_c_store_refused_instance_gets_the_ingest_status(server):
    bad = instance()
    del bad.StudyInstanceUID  # not storable: no study
    statuses = await asyncio.to_thread(_store, server.dimse.address, [bad], ExplicitVRLittleEndian)
    assert statuses[0] in (0xA900, 0xC000)


async def test_tcp_nodelay_on_accepted_connections(server):
    """Without TCP_NODELAY each response would wait on the peer's delayed ACK (DESIGN.md)."""
    seen: list[int] = []

    def probe() -> None:
        ae = AE(ae_title="PROBE")
        ae.add_requested_context(Verification)
        assoc = ae.associate(*server.dimse.address, ae_title="UPS_SERVER")
        try:
            for a in server.dimse.ae.active_associations:
                if a.requestor.ae_title == "PROBE":
                    seen.append(a.dul.socket.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        finally:
            assoc.release()

    await asyncio.to_thread(probe)
    assert seen and all(seen)

