"""The same malformed values over DIMSE: C-FIND answers A900 (identifier does not match the SOP
class) with an Error Comment, N-CREATE / N-SET answer 0106; nothing is stored."""

from __future__ import annotations

import asyncio

import pytest
from pydicom import Dataset
from pydicom.valuerep import DS

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
