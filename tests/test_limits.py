"""Limits (issue 11): each a setting; a request past one is refused with 413 / 400 before memory
grows with it, and searches answer one page with PS3.18's Warning when more results exist."""

from __future__ import annotations

import asyncio

import pytest

from .dicom_instances import instance, multipart, part10, uid
from .ups_client import create, new_uid, warning_text
from .workitems import DICOM_JSON, el, new_workitem


async def _raw_request(port: int, head: str, body: bytes = b"") -> tuple[int, str]:
    """Send ``head`` and ``body`` on a socket and read the response's status and body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head.encode() + body)
    await writer.drain()
    # a server waiting for the body never answers; the connection may stay open (keep-alive)
    head_bytes = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    status_line, _, fields = head_bytes.decode(errors="replace").partition("\r\n")
    length = next(int(v) for k, _, v in (f.partition(":") for f in fields.split("\r\n"))
                  if k.strip().lower() == "content-length")
    body_bytes = await asyncio.wait_for(reader.readexactly(length), 30)
    writer.close()
    return int(status_line.split()[1]), body_bytes.decode(errors="replace")


async def test_a_body_declared_larger_than_the_limit_is_413_before_it_is_read(server, http):
    server.settings.max_body_size = 1000
    head = ("POST /dicom-web/workitems HTTP/1.1\r\nHost: x\r\nContent-Type: application/dicom+json\r\n"
            "Content-Length: 50000000\r\n\r\n")
    status, body = await _raw_request(server.settings.http_port, head, b"[")  # 1 of 50,000,000 bytes sent
    assert status == 413 and "larger than 1000 bytes" in body


async def test_a_chunked_body_past_the_limit_is_413(server, http):
    server.settings.max_body_size = 1000

    async def chunks():
        for _ in range(100):
            yield b" " * 100

    r = await http.post("/workitems", content=chunks(), headers=DICOM_JSON)
    assert r.status_code == 413 and "1000 bytes" in r.json()["message"]


async def test_json_depth_and_element_limits_are_settings(server, http):
    server.settings.json_max_depth = 1
    nested = {"vr": "SQ", "Value": [{"00404021": {"vr": "SQ", "Value": [{"00080100": el("SH", "x")}]}}]}
    wi = new_uid()
    r = await http.post(f"/workitems?{wi}", json=new_workitem(**{"00404021": nested}), headers=DICOM_JSON)
    assert r.status_code == 400 and "deeper than 1 levels" in r.json()["message"]
    server.settings.json_max_depth, server.settings.json_max_elements = 16, 5
    r = await http.post(f"/workitems?{wi}", json=new_workitem(), headers=DICOM_JSON)
    assert r.status_code == 400 and "more than 5 elements" in r.json()["message"]
    assert (await http.get(f"/workitems/{wi}", headers=DICOM_JSON)).status_code == 404


async def test_a_search_without_limit_answers_the_default_page_and_says_more_remain(server, http):
    label = new_uid()
    for _ in range(5):
        await create(http, **{"00741202": el("LO", label)})
    server.settings.search_page_size, server.settings.search_max_page_size = 3, 4
    r = await http.get(f"/workitems?WorklistLabel={label}", headers=DICOM_JSON)
    assert len(r.json()) == 3 and warning_text(r) == "There are 2 additional results that can be requested"
    r = await http.get(f"/workitems?WorklistLabel={label}&limit=100", headers=DICOM_JSON)
    assert len(r.json()) == 4 and warning_text(r) == "There are 1 additional results that can be requested"
    r = await http.get(f"/workitems?WorklistLabel={label}&limit=100&offset=4", headers=DICOM_JSON)
    assert len(r.json()) == 1 and warning_text(r) is None


async def test_qido_answers_pages_with_the_warning(server, http):
    patient = f"PAT-{uid()[-8:]}"
    for _ in range(3):
        ds = instance(uid(), uid())
        ds.PatientID = patient
        body, ctype = multipart([part10(ds)])
        assert (await http.post("/studies", content=body, headers={"Content-Type": ctype})).status_code == 200
    server.settings.search_page_size = 2
    r = await http.get(f"/studies?PatientID={patient}")
    assert len(r.json()) == 2 and warning_text(r) == "There are additional results that can be requested"
    r = await http.get(f"/studies?PatientID={patient}&offset=2")
    assert len(r.json()) == 1 and warning_text(r) is None


@pytest.mark.parametrize("reserved", ["1.2.840.10008.5.1.4.34.5", "1.2.840.10008.5.1.4.34.5.1"])
async def test_the_global_subscription_uids_cannot_name_a_workitem(http, reserved):
    r = await http.post(f"/workitems?workitem={reserved}", json=new_workitem(), headers=DICOM_JSON)
    assert r.status_code == 400 and "reserved" in r.json()["message"]
    ds = new_workitem(**{"00080018": el("UI", reserved)})
    r = await http.post("/workitems", json=ds, headers=DICOM_JSON)
    assert r.status_code == 400 and "reserved" in r.json()["message"]
    assert (await http.get(f"/workitems/{reserved}", headers=DICOM_JSON)).status_code == 404
