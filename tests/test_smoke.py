"""Create -> claim -> update -> complete over real HTTP (UPS-STATE-01/03/09)."""

from .workitems import DICOM_JSON, new_workitem, performed_procedure, state_change

UID = "1.2.826.0.1.3680043.10.1.1"
TXN = "1.2.826.0.1.3680043.10.1.99"


async def test_lifecycle(http):
    r = await http.post(f"/workitems?{UID}", json=new_workitem(), headers=DICOM_JSON)
    assert r.status_code == 201, r.text
    assert r.headers["location"].endswith(f"/workitems/{UID}")
    r = await http.put(f"/workitems/{UID}/state", json=state_change("IN PROGRESS", TXN), headers=DICOM_JSON)
    assert r.status_code == 200, r.text
    r = await http.post(f"/workitems/{UID}?transaction-uid={TXN}", json=performed_procedure(), headers=DICOM_JSON)
    assert r.status_code == 200, r.text
    r = await http.put(f"/workitems/{UID}/state", json=state_change("COMPLETED", TXN), headers=DICOM_JSON)
    assert r.status_code == 200, r.text
    r = await http.get(f"/workitems/{UID}", headers=DICOM_JSON)
    assert r.json()[0]["00741000"]["Value"] == ["COMPLETED"]
    assert "00081195" not in r.json()[0]  # UPS-TXN-07
