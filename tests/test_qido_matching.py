"""QIDO-RS compiled by the one matcher (the parser and compiler of UPS search and C-FIND):
a comma is a list only for UIDs, Patient's Name matches case-insensitively, ranges are
validated, an unknown attribute is a 400 and a known one the level does not support is ignored
and named in a Warning (PS3.18 8.3.4, 10.6)."""

from __future__ import annotations

from .dicom_instances import instance, multipart, part10, uid


async def _stored(http, *instances) -> None:
    body, ctype = multipart([part10(ds) for ds in instances])
    r = await http.post("/studies", content=body, headers={"Content-Type": ctype})
    assert r.status_code == 200, r.text


def _studies(r) -> set[str]:
    assert r.status_code == 200, r.text
    return {ds["0020000D"]["Value"][0] for ds in r.json()}


async def test_comma_is_a_list_for_uids_only(http):
    a, b = instance(accession="A,B"), instance(accession="B")
    await _stored(http, a, b)
    both = f"{a.StudyInstanceUID},{b.StudyInstanceUID}"
    assert _studies(await http.get("/studies", params={"StudyInstanceUID": both})) == {
        a.StudyInstanceUID, b.StudyInstanceUID}
    # an SH value may hold a comma: it is one value, not the list A or B
    assert _studies(await http.get("/studies", params={"AccessionNumber": "A,B"})) == {a.StudyInstanceUID}


async def test_patient_name_is_case_insensitive(http):
    ds = instance()
    await _stored(http, ds)
    assert _studies(await http.get("/studies", params={"PatientName": "doe^jane"})) == {ds.StudyInstanceUID}
    assert _studies(await http.get("/studies", params={"PatientName": "DOE*"})) == {ds.StudyInstanceUID}


async def test_invalid_range_is_400(http):
    await _stored(http, instance())
    for value in ("2026-01-01", "20260101-20261231-1", "yesterday"):
        r = await http.get("/studies", params={"StudyDate": value})
        assert r.status_code == 400, (value, r.text)
        assert "StudyDate" in r.json()["message"]


async def test_unknown_attribute_is_400(http):
    r = await http.get("/studies", params={"NoSuchKeyword": "1"})
    assert r.status_code == 400, r.text


async def test_unsupported_key_is_ignored_and_named_in_a_warning(http):
    ds = instance()
    await _stored(http, ds)
    # SOP Instance UID is not a study-level key: ignored (all studies match), and said so
    r = await http.get("/studies", params={"SOPInstanceUID": uid()})
    assert _studies(r) == {ds.StudyInstanceUID}
    assert "SOPInstanceUID (0008,0018)" in r.headers["warning"]
    r = await http.get("/studies", params={"PatientID": "PAT-1"})
    assert "warning" not in r.headers


async def test_study_level_attribute_matches_in_the_stored_copy(http):
    ds = instance()
    await _stored(http, ds)
    assert _studies(await http.get("/studies", params={"StudyID": "1"})) == {ds.StudyInstanceUID}
    assert _studies(await http.get("/studies", params={"StudyID": "2"})) == set()


async def test_instance_level_keys_match_the_instance_metadata(http):
    study, series = uid(), uid()
    first, second = instance(study, series, InstanceNumber=1), instance(study, series, InstanceNumber=2)
    await _stored(http, first, second)
    r = await http.get(f"/studies/{study}/series/{series}/instances", params={"InstanceNumber": "2"})
    assert r.status_code == 200, r.text
    assert [x["00080018"]["Value"][0] for x in r.json()] == [second.SOPInstanceUID]
