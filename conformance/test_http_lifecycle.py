"""Black box over real HTTP against ``python -m ups_server serve``: create -> claim -> update ->
complete (UPS-STATE-01/03/09), and a restart on the same data dir keeps the workitems."""

from __future__ import annotations

import httpx

from .conftest import RunningServer

HEADERS = {"Content-Type": "application/dicom+json", "Accept": "application/dicom+json"}
UID = "1.2.826.0.1.3680043.10.2.1"
TXN = "1.2.826.0.1.3680043.10.2.99"


def el(vr: str, *values) -> dict:
    if vr == "PN":
        values = tuple({"Alphabetic": v} for v in values)
    return {"vr": vr, "Value": list(values)} if values else {"vr": vr}


def code(value: str) -> dict:
    return {"00080100": el("SH", value), "00080102": el("SH", "99LOCAL"), "00080104": el("LO", value)}


WORKITEM = {
    "00741000": el("CS", "SCHEDULED"),
    "00741200": el("CS", "HIGH"),
    "00741204": el("LO", "Read CT"),
    "00404005": el("DT", "20261123100000"),
    "00404041": el("CS", "READY"),
    "00100010": el("PN", "Doe^Jane"),
    "00100020": el("LO", "PAT-BB-1"),
}
PERFORMED = {"00741216": {"vr": "SQ", "Value": [{
    "00404028": {"vr": "SQ", "Value": [code("STATION1")]},
    "00404050": el("DT", "20261123100500"),
    "00404019": {"vr": "SQ", "Value": [code("READ")]},
    "00404051": el("DT", "20261123101000"),
    "00404033": {"vr": "SQ"},
}]}}


def state(value: str) -> dict:
    return {"00741000": el("CS", value), "00081195": el("UI", TXN)}


def test_lifecycle_over_http(ups_server: RunningServer):
    with httpx.Client(base_url=ups_server.base_url, headers=HEADERS, timeout=30) as http:
        r = http.post(f"/workitems?workitem={UID}", json=WORKITEM)
        assert r.status_code == 201, r.text  # UPS-STATE-01, UPS-CREATE-12
        assert r.headers["location"] == f"{ups_server.base_url}/workitems/{UID}"
        r = http.get("/workitems", params={"ProcedureStepState": "SCHEDULED", "PatientID": "PAT-BB-1"})
        assert r.status_code == 200 and [d["00080018"]["Value"][0] for d in r.json()] == [UID]
        r = http.put(f"/workitems/{UID}/state", json=state("IN PROGRESS"))
        assert r.status_code == 200, r.text  # UPS-STATE-03
        r = http.post(f"/workitems/{UID}", params={"transaction-uid": TXN}, json=PERFORMED)
        assert r.status_code == 200, r.text  # UPS-SET-02
        r = http.put(f"/workitems/{UID}/state", json=state("COMPLETED"))
        assert r.status_code == 200, r.text  # UPS-STATE-09
        r = http.get(f"/workitems/{UID}")
        assert r.status_code == 200
        assert r.json()[0]["00741000"]["Value"] == ["COMPLETED"]
        assert "00081195" not in r.json()[0]  # UPS-TXN-07


def test_restart_reuses_data_dir(start_ups_server):
    first = start_ups_server()
    with httpx.Client(base_url=first.base_url, headers=HEADERS, timeout=30) as http:
        assert http.post(f"/workitems?{UID}", json=WORKITEM).status_code == 201
    assert first.stop() in (0, -15)
    second = start_ups_server(data_dir=first.data_dir)
    with httpx.Client(base_url=second.base_url, headers=HEADERS, timeout=30) as http:
        r = http.get(f"/workitems/{UID}")
        assert r.status_code == 200, r.text
        assert r.json()[0]["00741000"]["Value"] == ["SCHEDULED"]
        assert http.post(f"/workitems?{UID}", json=WORKITEM).status_code == 409  # UPS-STATE-02
