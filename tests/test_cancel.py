"""Request Cancellation (N-ACTION type 2 / POST /workitems/{uid}/cancelrequest): UPS-CANCEL-01..07."""

from __future__ import annotations

import pytest

from .ups_client import in_state, retrieve, value, warning_text
from .workitems import DICOM_JSON, code, el

TXN = "1.2.826.0.1.3680043.10.6.1"
REASON = {
    "00741238": el("LT", "patient left"),
    "0074100E": {"vr": "SQ", "Value": [code("110514", "DCM", "Incorrect worklist entry selected")]},
    "0074100A": el("UR", "mailto:desk@example.org"),
    "0074100C": el("LO", "Front desk"),
}


@pytest.mark.parametrize("body", [None, REASON], ids=["empty", "with-reason"])
async def test_cancel_scheduled(http, body):
    # UPS-CANCEL-01/02, UPS-FINAL-04: SCHEDULED -> CANCELED by the SCP, final state met; 202
    uid = await in_state(http, "SCHEDULED", TXN)
    kwargs = {"json": body, "headers": DICOM_JSON} if body else {}
    r = await http.post(f"/workitems/{uid}/cancelrequest", **kwargs)
    assert r.status_code == 202, r.text
    stored = await retrieve(http, uid)
    assert value(stored, "00741000") == "CANCELED"
    item = stored["00741002"]["Value"][0]
    assert value(item, "00404052")  # Cancellation DateTime (UPS-FINAL-03)
    reason = value(item["0074100E"]["Value"][0], "00080100")
    if body:
        assert value(item, "00741238") == "patient left"
        assert reason == "110514"
        assert value(item["00741008"]["Value"][0], "0074100A") == "mailto:desk@example.org"
    else:
        assert reason == "110513"  # "Discontinued for unspecified reason", as dcm4chee


async def test_cancel_in_progress_is_a_request(http):
    # UPS-CANCEL-03/08: IN PROGRESS -> 202, state unchanged (the performer decides)
    uid = await in_state(http, "IN PROGRESS", TXN)
    before = await retrieve(http, uid)
    r = await http.post(f"/workitems/{uid}/cancelrequest/READER1", json=REASON, headers=DICOM_JSON)
    assert r.status_code == 202, r.text
    assert await retrieve(http, uid) == before


async def test_cancel_completed(http):
    # UPS-CANCEL-05: C311 -> 409
    uid = await in_state(http, "COMPLETED", TXN)
    before = await retrieve(http, uid)
    r = await http.post(f"/workitems/{uid}/cancelrequest", json=REASON, headers=DICOM_JSON)
    assert r.status_code == 409, r.text
    assert await retrieve(http, uid) == before


async def test_cancel_canceled(http):
    # UPS-CANCEL-06: B304 -> 202 + Warning
    uid = await in_state(http, "CANCELED", TXN)
    before = await retrieve(http, uid)
    r = await http.post(f"/workitems/{uid}/cancelrequest")
    assert r.status_code == 202, r.text
    assert warning_text(r) == "The UPS is already in the requested state of CANCELED."
    assert await retrieve(http, uid) == before


async def test_cancel_unknown(http):
    # UPS-CANCEL-07 / UPS-STATE-14: C307 -> 404
    r = await http.post("/workitems/1.2.826.0.1.3680043.10.6.404/cancelrequest")
    assert r.status_code == 404, r.text


@pytest.mark.parametrize(("content", "content_type", "status"), [
    (b"{oops", "application/dicom+json", 400),
    (b'{"ReasonForCancellation": "x"}', "application/dicom+json", 400),
    (b'{"00741238": {"vr": "LT", "Value": ["x"]}}', "text/plain", 415),
])
async def test_cancel_malformed(http, content, content_type, status):
    # UPS-CANCEL-07: malformed payload -> 400 (415 for a media type we do not read); no change
    uid = await in_state(http, "SCHEDULED", TXN)
    r = await http.post(f"/workitems/{uid}/cancelrequest", content=content,
                        headers={"Content-Type": content_type})
    assert r.status_code == status, r.text
    assert value(await retrieve(http, uid), "00741000") == "SCHEDULED"
