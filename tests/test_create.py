"""Create Workitem (N-CREATE / POST /workitems) validation: UPS-CREATE-01..12, UPS-STATE-01/02."""

from __future__ import annotations

import json

import pytest

from .ups_client import create, new_uid, retrieve, value, warning_text
from .workitems import DICOM_JSON, el, new_workitem

PUSH = "1.2.840.10008.5.1.4.34.6.1"


@pytest.mark.parametrize("form", ["bare", "workitem", "AffectedSOPInstanceUID", "dataset", "generated"])
async def test_create_uid_forms(http, form):
    # UPS-CREATE-11 (+ AMB-02): every UID form seen in clients is accepted.
    uid = new_uid()
    ds = new_workitem()
    url = {"bare": f"/workitems?{uid}", "workitem": f"/workitems?workitem={uid}",
           "AffectedSOPInstanceUID": f"/workitems?AffectedSOPInstanceUID={uid}"}.get(form, "/workitems")
    if form == "dataset":
        ds["00080018"] = el("UI", uid)
    r = await http.post(url, json=ds, headers=DICOM_JSON)
    assert r.status_code == 201, r.text  # UPS-CREATE-12
    location = r.headers["location"]
    created = location.rsplit("/", 1)[1]
    if form != "generated":
        assert created == uid
    assert location == f"{str(http.base_url).rstrip('/')}/workitems/{created}"
    assert r.content == b""  # no payload (UPS-HTTP-04)
    stored = await retrieve(http, created)
    assert value(stored, "00080018") == created
    assert value(stored, "00741000") == "SCHEDULED"  # UPS-STATE-01
    assert "00081195" not in stored  # UPS-TXN-03/07


async def test_query_uid_and_dataset_uid_disagree(http):
    # UPS-CREATE-11: (0008,0018) differing from the query UID -> 400, nothing created
    uid, other = new_uid(), new_uid()
    r = await http.post(f"/workitems?workitem={uid}", json=new_workitem(**{"00080018": el("UI", other)}),
                        headers=DICOM_JSON)
    assert r.status_code == 400, r.text
    for u in (uid, other):
        assert (await http.get(f"/workitems/{u}", headers=DICOM_JSON)).status_code == 404


async def test_invalid_uid_parameter(http):
    r = await http.post("/workitems?workitem=not-a-uid", json=new_workitem(), headers=DICOM_JSON)
    assert r.status_code == 400, r.text


async def test_duplicate(http):
    # UPS-STATE-02: existing UID (any state) -> 0111 -> 409 "The Target Workitem already exists."
    uid = new_uid()
    assert (await http.post(f"/workitems?{uid}", json=new_workitem(), headers=DICOM_JSON)).status_code == 201
    before = await retrieve(http, uid)
    r = await http.post(f"/workitems?{uid}", json=new_workitem(**{"00741204": el("LO", "Other")}),
                        headers=DICOM_JSON)
    assert r.status_code == 409, r.text
    assert warning_text(r) == "The Target Workitem already exists."
    assert await retrieve(http, uid) == before  # UPS-STATE-16


async def test_scp_populated_attributes(http):
    # UPS-CREATE-06: SOP Class UID = Push, Modification DateTime = create time, Worklist Label
    # filled; UPS-CREATE-03: Type 2 keys left out are stored empty.
    uid = new_uid()
    ds = new_workitem()
    r = await http.post(f"/workitems?{uid}", json=ds, headers=DICOM_JSON)
    assert r.status_code == 201 and warning_text(r) is None
    stored = await retrieve(http, uid)
    assert value(stored, "00080016") == PUSH  # UPS-SOP-01
    assert value(stored, "00404010")  # Scheduled Procedure Step Modification DateTime
    assert value(stored, "00741202")  # Worklist Label
    for type2 in ("00404025", "00404026", "00404027", "00404018", "0040A370", "00380010", "00741002"):
        assert type2 in stored and "Value" not in stored[type2], type2


async def test_missing_start_datetime_is_filled_with_warning(http):
    # UPS-CREATE-07 (DESIGN.md, dcm4che upsscu): 201 + "created with modifications"
    uid = new_uid()
    ds = new_workitem()
    del ds["00404005"]
    r = await http.post(f"/workitems?{uid}", json=ds, headers=DICOM_JSON)
    assert r.status_code == 201, r.text
    assert warning_text(r) == "The Workitem was created with modifications."
    assert value(await retrieve(http, uid), "00404005")


TYPE_1 = {"00741200": "CS", "00741204": "LO", "00404041": "CS", "00741000": "CS"}


@pytest.mark.parametrize("tag", list(TYPE_1))
@pytest.mark.parametrize("how", ["absent", "empty"])
async def test_type_1_missing(http, tag, how):
    # UPS-CREATE-02 / UPS-CREATE-01: Type 1 absent (0120) or empty (0121) -> 400
    ds = new_workitem()
    if how == "absent":
        del ds[tag]
    else:
        ds[tag] = {"vr": TYPE_1[tag]}
    uid = new_uid()
    r = await http.post(f"/workitems?{uid}", json=ds, headers=DICOM_JSON)
    assert r.status_code == 400, r.text
    assert (await http.get(f"/workitems/{uid}", headers=DICOM_JSON)).status_code == 404


@pytest.mark.parametrize(("tag", "bad"), [
    ("00741200", el("CS", "URGENT")),  # priority enumeration (UPS-CREATE-02)
    ("00404041", el("CS", "MAYBE")),  # input readiness enumeration
    ("00404005", el("DT", "tomorrow")),  # DT syntax
    ("00741000", el("CS", "IN PROGRESS")),  # UPS-CREATE-01: C309
    ("00081195", el("UI", "1.2.3.4")),  # UPS-CREATE-05 / UPS-TXN-03: must be empty
    ("00741002", {"vr": "SQ", "Value": [{"00741004": {"vr": "DS", "Value": [10]}}]}),  # UPS-CREATE-05
    ("00741216", {"vr": "SQ", "Value": [{"00404050": el("DT", "20261123")}]}),  # UPS-CREATE-05
    ("00404034", {"vr": "SQ", "Value": [{"00404037": el("PN", "Dr^No")}]}),  # UPS-CREATE-04: item type 1
])
async def test_invalid_values(http, tag, bad):
    uid = new_uid()
    r = await http.post(f"/workitems?{uid}", json=new_workitem(**{tag: bad}), headers=DICOM_JSON)
    assert r.status_code == 400, r.text
    if tag == "00741000":
        assert warning_text(r) == "The provided value of UPS State was not SCHEDULED."
    assert (await http.get(f"/workitems/{uid}", headers=DICOM_JSON)).status_code == 404


async def test_array_of_one_and_bare_object(http):
    # DESIGN.md interoperability: a JSON array holding one dataset, or a bare dataset
    for body in ([new_workitem()], new_workitem()):
        r = await http.post(f"/workitems?{new_uid()}", json=body, headers=DICOM_JSON)
        assert r.status_code == 201, r.text


@pytest.mark.parametrize(("content", "content_type", "status"), [
    (b"{not json", "application/dicom+json", 400),
    (json.dumps([new_workitem(), new_workitem()]).encode(), "application/dicom+json", 400),
    (json.dumps({"PatientID": {"vr": "LO", "Value": ["x"]}}).encode(), "application/dicom+json", 400),
    (json.dumps({"00100020": {"vr": "XX"}}).encode(), "application/dicom+json", 400),
    (b"", "application/dicom+json", 400),
    (json.dumps(new_workitem()).encode(), "text/plain", 415),  # UPS-HTTP-01
    (json.dumps(new_workitem()).encode(), "application/dicom+xml", 415),
])
async def test_malformed_requests(http, content, content_type, status):
    uid = new_uid()
    r = await http.post(f"/workitems?{uid}", content=content, headers={"Content-Type": content_type})
    assert r.status_code == status, r.text
    assert (await http.get(f"/workitems/{uid}", headers=DICOM_JSON)).status_code == 404


async def test_retrieve_not_acceptable(http):
    # UPS-HTTP-01: unsatisfiable Accept -> 406
    uid = new_uid()
    await http.post(f"/workitems?{uid}", json=new_workitem(), headers=DICOM_JSON)
    r = await http.get(f"/workitems/{uid}", headers={"Accept": "application/xml"})
    assert r.status_code == 406, r.text
    r = await http.get(f"/workitems/{uid}", headers={"Accept": "application/dicom+json"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/dicom+json")


async def test_accept_as_a_query_parameter(http):
    # UPS-HTTP-02: the `accept` query parameter is honoured like the header
    uid = await create(http)
    r = await http.get(f"/workitems/{uid}", params={"accept": "application/dicom+xml"})
    assert r.status_code == 406, r.text
    r = await http.get(f"/workitems/{uid}", params={"accept": "application/dicom+json", "charset": "utf-8"},
                       headers={"Accept": "application/xml"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/dicom+json")


async def test_retrieve_payload_and_headers(http):
    # UPS-HTTP-05: an array of one dataset, 404 for an unknown UID; UPS-HTTP-08: Content-Type and Content-Length
    uid = await create(http)
    r = await http.get(f"/workitems/{uid}", headers=DICOM_JSON)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/dicom+json")
    assert int(r.headers["content-length"]) == len(r.content)
    [ds] = r.json()
    assert value(ds, "00080018") == uid
    r = await http.get(f"/workitems/{new_uid()}", headers=DICOM_JSON)
    assert r.status_code == 404 and int(r.headers["content-length"]) == len(r.content)
