"""STOW-RS / QIDO-RS / WADO-RS over real HTTP (PS3.18 10.4-10.6)."""

from __future__ import annotations

import io

import pydicom

from ups_server.dicom.statuses import stow_http_status

from .dicom_instances import instance, multipart, part10, uid
from .reading_flow import read_uid, referenced_sops, workitem

FAILED, REFERENCED, RETRIEVE_URL, REASON = "00081198", "00081199", "00081190", "00081197"


async def _stow(http, parts: list[bytes], path: str = "/studies"):
    body, ctype = multipart(parts)
    return await http.post(path, content=body, headers={"Content-Type": ctype, "Accept": "application/dicom+json"})


async def test_stow_all_ok_then_qido_and_wado(http):
    study, series = uid(), uid()
    instances = [instance(study, series, InstanceNumber=n) for n in (1, 2, 3)]
    r = await _stow(http, [part10(ds) for ds in instances])
    assert r.status_code == 200, r.text
    body = r.json()
    refs = body[REFERENCED]["Value"]
    assert [x["00081155"]["Value"][0] for x in refs] == [ds.SOPInstanceUID for ds in instances]
    assert refs[0][RETRIEVE_URL]["Value"][0].endswith(
        f"/studies/{study}/series/{series}/instances/{instances[0].SOPInstanceUID}")
    assert FAILED not in body

    r = await http.get("/studies", params={"PatientID": "PAT-1"})
    assert r.status_code == 200
    [found] = r.json()
    assert found["0020000D"]["Value"] == [study]
    assert found["00201208"]["Value"] == [3] and found["00080061"]["Value"] == ["OT"]
    assert (await http.get("/studies", params={"PatientID": "nobody"})).json() == []
    assert len((await http.get("/studies", params={"StudyDate": "20260101-20261231"})).json()) == 1
    assert len((await http.get("/studies", params={"Modality": "OT"})).json()) == 1
    assert len((await http.get("/studies", params={"AccessionNumber": "ACC-*"})).json()) == 1
    r = await http.get(f"/studies/{study}/series")
    assert [s["0020000E"]["Value"][0] for s in r.json()] == [series]
    r = await http.get(f"/studies/{study}/series/{series}/instances")
    assert len(r.json()) == 3

    r = await http.get(f"/studies/{study}", headers={"Accept": 'multipart/related; type="application/dicom"'})
    assert r.status_code == 200 and r.headers["content-type"].startswith("multipart/related")
    boundary = r.headers["content-type"].split("boundary=")[1]
    chunks = [c for c in r.content.split(b"--" + boundary.encode()) if b"\r\n\r\n" in c]
    got = [pydicom.dcmread(io.BytesIO(c.split(b"\r\n\r\n", 1)[1][:-2])) for c in chunks]
    assert sorted(d.SOPInstanceUID for d in got) == sorted(d.SOPInstanceUID for d in instances)
    sop = instances[1].SOPInstanceUID
    r = await http.get(f"/studies/{study}/series/{series}/instances/{sop}")
    assert r.status_code == 200 and part10(instances[1]) in r.content
    r = await http.get(f"/studies/{study}/series/{series}/instances/{sop}/metadata")
    [meta] = r.json()
    assert meta["00080018"]["Value"] == [sop] and meta["00100020"]["Value"] == ["PAT-1"]
    assert len((await http.get(f"/studies/{study}/metadata")).json()) == 3
    assert (await http.get(f"/studies/{uid()}")).status_code == 404


async def test_stow_partial_failure_is_202(http):
    good = instance()
    truncated = part10(instance())[:-5]
    r = await _stow(http, [part10(good), b"this is not DICOM", truncated])
    assert r.status_code == 202, r.text
    body = r.json()
    assert [x["00081155"]["Value"][0] for x in body[REFERENCED]["Value"]] == [good.SOPInstanceUID]
    assert [x[REASON]["Value"][0] for x in body[FAILED]["Value"]] == [0xC000, 0xC000]


async def test_stow_restore_is_idempotent(http):
    data = part10(instance())
    assert (await _stow(http, [data])).status_code == 200
    r = await _stow(http, [data])
    assert r.status_code == 200 and len(r.json()[REFERENCED]["Value"]) == 1


async def test_stow_all_failed(http):
    study = uid()
    other = instance()  # parseable, but of another study than the URL names
    r = await _stow(http, [part10(other)], f"/studies/{study}")
    assert r.status_code == 409, r.text
    [failed] = r.json()[FAILED]["Value"]
    assert failed[REASON]["Value"] == [0xA900] and failed["00081155"]["Value"] == [other.SOPInstanceUID]
    r = await _stow(http, [b"garbage", b"more garbage"])
    assert r.status_code == 400


async def test_stow_wrong_content_type_is_415(http):
    r = await http.post("/studies", content=part10(instance()), headers={"Content-Type": "application/dicom"})
    assert r.status_code == 415
    body, ctype = multipart([part10(instance())])
    r = await http.post("/studies", content=body,
                        headers={"Content-Type": ctype.replace("application/dicom", "application/dicom+xml")})
    assert r.status_code == 415


async def test_stow_streams_a_body_in_small_chunks(http):
    """The body arrives in 7-byte chunks (delimiters split across reads)."""
    instances = [instance() for _ in range(3)]
    body, ctype = multipart([part10(ds) for ds in instances])

    async def chunks():
        for i in range(0, len(body), 7):
            yield body[i:i + 7]

    r = await http.post("/studies", content=chunks(), headers={"Content-Type": ctype})
    assert r.status_code == 200, r.text
    assert len(r.json()[REFERENCED]["Value"]) == 3


async def test_stow_truncated_body_fails_last_part_only(http):
    good = instance()
    body, ctype = multipart([part10(good), part10(instance())])
    cut = body[: len(body) - 60]  # inside the second part's pixel data, no close delimiter
    r = await http.post("/studies", content=cut, headers={"Content-Type": ctype})
    assert r.status_code == 202, r.text
    assert len(r.json()[REFERENCED]["Value"]) == 1 and len(r.json()[FAILED]["Value"]) == 1


async def test_stow_of_many_parts_keeps_order_and_fails_bad_parts_only(http):
    """More parts than one store transaction takes (STOW-RS stores batches of parts), with a
    non-DICOM part, a part of another study and a repeated instance in between."""
    study, series = uid(), uid()
    good = [instance(study, series, InstanceNumber=n) for n in range(1, 71)]
    parts = [part10(ds) for ds in good]
    parts[10:10] = [b"not DICOM"]
    parts[40:40] = [part10(instance(uid()))]  # of another study than the URL names
    parts.append(part10(good[3]))  # the same instance again: stored once, referenced once
    r = await _stow(http, parts, f"/studies/{study}")
    assert r.status_code == 202, r.text
    body = r.json()
    referenced = [x["00081155"]["Value"][0] for x in body[REFERENCED]["Value"]]
    assert referenced == [ds.SOPInstanceUID for ds in good] + [good[3].SOPInstanceUID]
    assert [x[REASON]["Value"][0] for x in body[FAILED]["Value"]] == [0xC000, 0xA900]
    assert len((await http.get(f"/studies/{study}/series/{series}/instances")).json()) == 70
    for n in (1, 2):  # the rules saw every stored instance exactly once
        refs = referenced_sops(await workitem(http, read_uid(n, study)))
        assert sorted(refs) == sorted(ds.SOPInstanceUID for ds in good)


def test_stow_status_of_the_instance_outcomes():
    # PS3.18 10.5.3.1: 200 all stored, 202 some; nothing stored: 400 when every failure is the
    # request's own (C000 cannot understand), 403 when every one is refused for authorization
    # (0124), else 409
    assert stow_http_status(2, []) == 200
    assert stow_http_status(1, [0xC000]) == 202
    assert stow_http_status(0, [0xC000, 0xC000]) == 400
    assert stow_http_status(0, [0x0124]) == 403
    assert stow_http_status(0, [0xA700]) == 409
    assert stow_http_status(0, [0xC000, 0xA900]) == 409
    assert stow_http_status(0, [0xC000, 0x0124]) == 409
