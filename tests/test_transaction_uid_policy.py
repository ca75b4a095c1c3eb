"""The service decides which Transaction UID a request carries (UPS-TXN-10): one policy for every
transaction that takes one. The same UID in the query and in (0008,1195) is that UID; two
different ones are refused 0106 / 400 naming where each came from, and nothing changes."""

from __future__ import annotations

from .ups_client import claim, create, retrieve
from .workitems import DICOM_JSON, el, state_change

TXN = "1.2.826.0.1.3680043.10.5.11"
OTHER = "1.2.826.0.1.3680043.10.5.12"
COMMENT = {"00400400": el("LT", "updated comment")}


def _refused_naming_both(r) -> None:
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["dicomStatus"] == "0106"
    assert "the query parameter" in body["message"] and "(0008,1195)" in body["message"]


async def test_update_with_two_different_transaction_uids(http):
    uid = await create(http)
    await claim(http, uid, TXN)
    before = await retrieve(http, uid)
    r = await http.post(f"/workitems/{uid}?transaction-uid={OTHER}", json={**COMMENT, "00081195": el("UI", TXN)},
                        headers=DICOM_JSON)
    _refused_naming_both(r)
    assert await retrieve(http, uid) == before
    r = await http.post(f"/workitems/{uid}?transaction-uid={TXN}", json={**COMMENT, "00081195": el("UI", TXN)},
                        headers=DICOM_JSON)
    assert r.status_code == 200, r.text  # the same UID twice is that UID


async def test_change_state_with_two_different_transaction_uids(http):
    uid = await create(http)
    r = await http.put(f"/workitems/{uid}/state?transaction-uid={OTHER}", json=state_change("IN PROGRESS", TXN),
                       headers=DICOM_JSON)
    _refused_naming_both(r)
    assert (await retrieve(http, uid))["00741000"]["Value"] == ["SCHEDULED"]


async def test_change_state_needs_the_procedure_step_state(http):
    uid = await create(http)
    r = await http.put(f"/workitems/{uid}/state", json={"00081195": el("UI", TXN)}, headers=DICOM_JSON)
    assert r.status_code == 400, r.text
    assert r.json()["dicomStatus"] == "0120"
