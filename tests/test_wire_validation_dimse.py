"""The same malformed values over DIMSE: C-FIND answers A900 (identifier does not match the SOP
class) with an Error Comment, N-CREATE / N-SET answer 0106; nothing is stored."""

from __future__ import annotations

import asyncio

import pytest
from pydicom import Dataset
from pydicom.valuerep import DS
from pynetdicom import AE, evt
from pynetdicom.sop_class import Verification

from ups_server.dicom.dataset import to_pydicom

from .dimse_client import UPSClient
from .ups_client import new_uid
from .workitems import new_workitem

pytestmark = pytest.mark.dimse


def _client(server) -> UPSClient:
    return UPSClient("127.0.0.1", server.settings.dimse_port).open()


def _identifier(keyword: str, value: str) -> Dataset:
    ds = Dataset()
    ds.PatientName = ""
    elem_vr = {"PatientWeight": "DS", "InstanceNumber": "IS"}[keyword]
    ds.add_new(keyword, elem_vr, None)
    ds[keyword]._value = value  # as a device would put it on the wire, unchecked
    return ds


@pytest.mark.parametrize("keyword,value", [
    ("PatientWeight", "nan"), ("PatientWeight", "inf"), ("PatientWeight", "1e999"), ("InstanceNumber", "x1"),
])
async def test_a_c_find_key_that_is_not_a_number_is_a900(server, keyword, value):
    def find():
        with _client(server) as client:
            return [(int(s.Status), s.get("ErrorComment")) for s, _ in
                    client.a.send_c_find(_identifier(keyword, value), "1.2.840.10008.5.1.4.34.6.3")]

    [(status, comment)] = await asyncio.to_thread(find)
    assert status == 0xA900 and comment


async def test_n_create_with_a_non_finite_number_is_0106_and_nothing_is_created(server):
    uid = new_uid()
    ds = new_workitem()

    def create():
        with _client(server) as client:
            reply = client.create({**ds, "00101030": {"vr": "DS", "Value": [1.0]}}, uid)
            assert reply.status == 0x0000  # the same dataset with a finite weight is created
            bad = {**ds, "00101030": {"vr": "DS", "Value": [1.0]}}
            pyds = to_pydicom(bad)
            pyds.PatientWeight = DS("NaN", validation_mode=0)
            status, _ = client.a.send_n_create(pyds, "1.2.840.10008.5.1.4.34.6.1", new_uid())
            return int(status.Status), status.get("ErrorComment")

    status, comment = await asyncio.to_thread(create)
    assert status == 0x0106 and "DS" in comment


async def test_associations_per_calling_ae_are_limited(server):
    server.settings.max_associations_per_ae = 2

    def run():
        held = [UPSClient("127.0.0.1", server.settings.dimse_port, "BUSY_AE").open() for _ in range(2)]
        try:
            ae = AE(ae_title="BUSY_AE")
            ae.add_requested_context(Verification)
            answers = []
            third = ae.associate("127.0.0.1", server.settings.dimse_port, ae_title="UPS_SERVER",
                                 evt_handlers=[(evt.EVT_ACSE_RECV, lambda e: answers.append(e.primitive))])
            rejected = (third.is_rejected, answers[0].result, answers[0].result_source, answers[0].diagnostic)
            with UPSClient("127.0.0.1", server.settings.dimse_port, "OTHER_AE") as other:
                other_ok = other.a.is_established
        finally:
            held.pop().close()
        with UPSClient("127.0.0.1", server.settings.dimse_port, "BUSY_AE") as again:
            again_ok = again.a.is_established
        for client in held:
            client.close()
        return rejected, other_ok, again_ok

    rejected, other_ok, again_ok = await asyncio.to_thread(run)
    assert rejected == (True, 0x02, 0x03, 0x02)  # transient, presentation: local limit exceeded (PS3.8 9.3.4)
    assert other_ok and again_ok


@pytest.mark.parametrize("reserved", ["1.2.840.10008.5.1.4.34.5", "1.2.840.10008.5.1.4.34.5.1"])
async def test_n_create_with_a_global_subscription_uid_is_0106(server, reserved):
    def create():
        with _client(server) as client:
            return client.create(new_workitem(), reserved)

    reply = await asyncio.to_thread(create)
    assert reply.status == 0x0106 and "reserved" in reply.comment
