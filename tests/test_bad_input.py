"""Input a client can send that PostgreSQL or the index cannot hold as given: NUL characters,
numbers past 64 bits, values past a B-tree entry. Each is a clear 4xx that changes nothing, or
(for stored instances, whose values we do not own) is stored with a cleaned index copy."""

from __future__ import annotations

import pytest

from .dicom_instances import instance, multipart, part10, uid
from .reading_flow import read_uid, workitem
from .ups_client import create, new_uid, put_state, retrieve, value
from .workitems import DICOM_JSON, el, new_workitem, state_change

LONG = "L" * 20000


@pytest.mark.parametrize("url", [
    "/workitems?PatientID=a%00b",
    "/studies?PatientID=a%00b",
    "/workitems/1.2.3/state/READ%00ER",
])
async def test_a_nul_in_the_url_is_400(http, url):
    r = await http.request("PUT" if "/state/" in url else "GET", url, json=state_change("IN PROGRESS", "1.2.3"),
                           headers=DICOM_JSON)
    assert r.status_code == 400 and "NUL" in r.json()["message"]


@pytest.mark.parametrize("url", [
    "/workitems?offset=99999999999999999999",
    "/workitems?limit=99999999999999999999",
    "/studies?limit=x",
    "/studies?offset=-1",
    f"/studies/{uid()}/series?offset=99999999999999999999",
])
async def test_paging_outside_the_integer_range_is_400(http, url):
    r = await http.get(url, headers=DICOM_JSON)
    assert r.status_code == 400 and "expected an integer" in r.json()["message"]


async def test_a_nul_in_a_workitem_value_is_400_and_nothing_is_created(http):
    wi = new_uid()
    r = await http.post(f"/workitems?{wi}", json=new_workitem(**{"00741204": el("LO", "Re\x00ad")}),
                        headers=DICOM_JSON)
    assert r.status_code == 400 and "NUL" in r.json()["message"]
    assert (await http.get(f"/workitems/{wi}", headers=DICOM_JSON)).status_code == 404


async def test_claim_with_a_transaction_uid_that_is_not_a_uid_is_refused(http):
    # UPS-TXN-01: the Transaction UID is a UID (VR UI); the workitem stays SCHEDULED (UPS-STATE-16)
    wi = await create(http)
    r = await put_state(http, wi, "IN PROGRESS", "not-a-uid")
    assert r.status_code == 400 and "not a valid UID" in r.json()["message"]
    assert value(await retrieve(http, wi), "00741000") == "SCHEDULED"
    r = await http.post("/workitems/claim", json=[state_change("IN PROGRESS", "1..2")], headers=DICOM_JSON)
    assert r.status_code == 400 and "not a valid UID" in r.json()["message"]
    assert value(await retrieve(http, wi), "00741000") == "SCHEDULED"


async def test_a_requester_longer_than_an_lo_value_is_400(http):
    wi = await create(http)
    r = await http.put(f"/workitems/{wi}/state/{'R' * 65}", json=state_change("IN PROGRESS", new_uid()),
                       headers=DICOM_JSON)
    assert r.status_code == 400 and "requester" in r.json()["message"]
    assert value(await retrieve(http, wi), "00741000") == "SCHEDULED"


async def test_values_longer_than_an_index_entry_are_kept_whole(http):
    wi = await create(http, **{"00100020": el("LO", LONG), "00741204": el("LO", LONG)})
    stored = await retrieve(http, wi)
    assert value(stored, "00100020") == LONG and value(stored, "00741204") == LONG


async def test_an_instance_with_nul_padding_and_overlong_values_is_stored(http):
    """Devices write such values; the file is kept as sent, the index copy is cleaned, the rules run."""
    study, series = uid(), uid()
    ds = instance(study, series, StudyDescription="CT\x00HEAD\x00", AccessionNumber=LONG)
    ds.PatientID = "PAT-9\x00"
    body, ctype = multipart([part10(ds)])
    r = await http.post("/studies", content=body, headers={"Content-Type": ctype})
    assert r.status_code == 200, r.text
    r = await http.get(f"/studies/{study}/series/{series}/instances/{ds.SOPInstanceUID}/metadata")
    [meta] = r.json()
    assert meta["00081030"]["Value"] == ["CTHEAD"] and meta["00100020"]["Value"] == ["PAT-9"]
    assert meta["00080050"]["Value"] == [LONG]
    r = await http.get(f"/studies/{study}/series/{series}/instances/{ds.SOPInstanceUID}")
    assert part10(ds) in r.content  # the stored file is the one sent
    for n in (1, 2):
        assert await workitem(http, read_uid(n, study)) is not None


async def test_an_instance_with_unconvertible_values_is_stored(http):
    """An IS of letters and a DS of NaN: left out of the index copy, the instance is stored whole."""
    study, series = uid(), uid()
    ds = instance(study, series, InstanceNumber="98765", SliceThickness="12345.6")
    data = part10(ds).replace(b"98765 ", b"abcde ").replace(b"12345.6 ", b"NaN     ")
    body, ctype = multipart([data])
    r = await http.post("/studies", content=body, headers={"Content-Type": ctype})
    assert r.status_code == 200, r.text
    base = f"/studies/{study}/series/{series}/instances/{ds.SOPInstanceUID}"
    [meta] = (await http.get(f"{base}/metadata")).json()
    assert meta["00100020"]["Value"] == ["PAT-1"]
    assert meta.get("00180050", {}).get("Value") in (None, [None])  # DS NaN: no number in JSON
    assert "00200013" not in meta  # IS "abcde" cannot be converted
    assert data in (await http.get(base)).content  # the stored file is the one sent
