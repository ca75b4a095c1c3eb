"""DICOM XML over UPS-RS and STOW-RS (PS3.18 8.7.3, Table 11.1.3-1, 10.5.3): Create, Update
and Change State take ``multipart/related; type="application/dicom+xml"``; Retrieve and Search
answer it when asked (header, ``accept`` parameter, q-values); STOW-RS answers
``application/dicom+xml`` as dcm4che's ``stowrs`` asks. Responses are taken apart with the
standard library's ``email`` parser and ElementTree, not with the server's own code."""

from __future__ import annotations

import email
import email.policy
import xml.etree.ElementTree as ET

import httpx

from ups_server.dicom.xml import from_xml, to_xml

from .dicom_instances import instance, multipart, part10
from .dicom_instances import uid as dicom_uid
from .ups_client import new_uid, retrieve, value
from .workitems import DICOM_JSON, new_workitem

XML_TYPE = 'multipart/related; type="application/dicom+xml"'
ACCEPT_XML = {"Accept": XML_TYPE}
NS = "{http://dicom.nema.org/PS3.19/models/NativeDICOM}"
TXN = "1.2.826.0.1.3680043.10.5.77"

# Create's body as a PS3.19 client writes it (not produced by the server's writer)
CREATE_XML = b"""<?xml version="1.0" encoding="UTF-8"?>
<NativeDicomModel xmlns="http://dicom.nema.org/PS3.19/models/NativeDICOM" xml:space="preserve">
  <DicomAttribute tag="00741000" vr="CS" keyword="ProcedureStepState"><Value number="1">SCHEDULED</Value></DicomAttribute>
  <DicomAttribute tag="00741200" vr="CS" keyword="ScheduledProcedureStepPriority"><Value number="1">HIGH</Value></DicomAttribute>
  <DicomAttribute tag="00741204" vr="LO" keyword="ProcedureStepLabel"><Value number="1">Read &amp; report</Value></DicomAttribute>
  <DicomAttribute tag="00404005" vr="DT" keyword="ScheduledProcedureStepStartDateTime"><Value number="1">20261123100000</Value></DicomAttribute>
  <DicomAttribute tag="00404041" vr="CS" keyword="InputReadinessState"><Value number="1">READY</Value></DicomAttribute>
  <DicomAttribute tag="00100010" vr="PN" keyword="PatientName">
    <PersonName number="1"><Alphabetic><FamilyName>Doe</FamilyName><GivenName>Jane</GivenName></Alphabetic></PersonName>
  </DicomAttribute>
  <DicomAttribute tag="00100020" vr="LO" keyword="PatientID"><Value number="1">PAT-XML</Value></DicomAttribute>
</NativeDicomModel>
"""


def xml_body(*documents: bytes) -> tuple[bytes, dict[str, str]]:
    boundary = "xmlBoundary42"
    body = b"".join(f"--{boundary}\r\nContent-Type: application/dicom+xml\r\n\r\n".encode() + d + b"\r\n"
                    for d in documents) + f"--{boundary}--\r\n".encode()
    return body, {"Content-Type": f'{XML_TYPE}; boundary={boundary}'}


def xml_parts(r: httpx.Response) -> list[bytes]:
    """The parts of a multipart/related response, checked to be DICOM XML documents."""
    ctype = r.headers["content-type"]
    assert ctype.startswith(XML_TYPE + "; boundary="), ctype
    message = email.message_from_bytes(f"Content-Type: {ctype}\r\n\r\n".encode() + r.content,
                                       policy=email.policy.HTTP)
    assert message.is_multipart()
    parts = [p for p in message.iter_parts()]
    assert all(p.get_content_type() == "application/dicom+xml" for p in parts)
    bodies = [p.get_payload(decode=True) for p in parts]
    for body in bodies:
        assert ET.fromstring(body).tag == NS + "NativeDicomModel"
    return bodies


async def test_create_in_xml_then_retrieve_in_xml(http):
    uid = new_uid()
    body, headers = xml_body(CREATE_XML)
    r = await http.post(f"/workitems?{uid}", content=body, headers=headers)
    assert r.status_code == 201, r.text
    as_json = await retrieve(http, uid)
    assert value(as_json, "00741204") == "Read & report"
    assert as_json["00100010"]["Value"] == [{"Alphabetic": "Doe^Jane"}]

    r = await http.get(f"/workitems/{uid}", headers=ACCEPT_XML)
    assert r.status_code == 200, r.text
    [document] = xml_parts(r)
    assert from_xml(document) == as_json  # the same workitem in either media type
    root = ET.fromstring(document)
    name = root.find(f"{NS}DicomAttribute[@tag='00100010']/{NS}PersonName/{NS}Alphabetic/{NS}FamilyName")
    assert name is not None and name.text == "Doe"
    assert root.find(f"{NS}DicomAttribute[@tag='00081195']") is None  # UPS-TXN-07


async def test_change_state_and_update_in_xml(http):
    uid = new_uid()
    await http.post(f"/workitems?{uid}", json=new_workitem(), headers=DICOM_JSON)
    body, headers = xml_body(to_xml({"00741000": {"vr": "CS", "Value": ["IN PROGRESS"]},
                                     "00081195": {"vr": "UI", "Value": [TXN]}}))
    r = await http.put(f"/workitems/{uid}/state", content=body, headers=headers)
    assert r.status_code == 200, r.text
    assert value(await retrieve(http, uid), "00741000") == "IN PROGRESS"
    body, headers = xml_body(to_xml({"00400400": {"vr": "LT", "Value": ["line one\r\nline <two>"]}}))
    r = await http.post(f"/workitems/{uid}?transaction-uid={TXN}", content=body, headers=headers)
    assert r.status_code == 200, r.text
    assert value(await retrieve(http, uid), "00400400") == "line one\r\nline <two>"


async def test_search_in_xml_gives_the_json_results(http):
    label = f"xml-search-{new_uid()}"
    uids = [new_uid() for _ in range(3)]
    for uid in uids:
        r = await http.post(f"/workitems?{uid}", json=new_workitem(**{"00741204": {"vr": "LO", "Value": [label]}}),
                            headers=DICOM_JSON)
        assert r.status_code == 201
    query = {"ProcedureStepLabel": label, "includefield": "all"}
    as_json = (await http.get("/workitems", params=query, headers=DICOM_JSON)).json()
    r = await http.get("/workitems", params=query, headers=ACCEPT_XML)
    assert r.status_code == 200, r.text
    assert [from_xml(part) for part in xml_parts(r)] == as_json
    # the accept query parameter, and q-values choosing XML over JSON
    r = await http.get("/workitems", params={**query, "accept": XML_TYPE})
    assert len(xml_parts(r)) == 3
    r = await http.get("/workitems", params=query,
                       headers={"Accept": f"application/dicom+json;q=0.5, {XML_TYPE}"})
    assert len(xml_parts(r)) == 3
    r = await http.get("/workitems", params={"ProcedureStepLabel": "nothing-matches"}, headers=ACCEPT_XML)
    assert r.status_code == 204 and r.content == b""


async def test_bad_xml_bodies_are_refused_and_nothing_is_created(http):
    for body, headers, status in [
        (*xml_body(b"<NativeDicomModel><DicomAttribute"), 400),
        (*xml_body(b'<!DOCTYPE x [<!ENTITY a "aaaa">]><NativeDicomModel/>'), 400),
        (*xml_body(CREATE_XML, CREATE_XML), 400),  # one workitem is one part
        (CREATE_XML, {"Content-Type": f"{XML_TYPE}"}, 400),  # no boundary
    ]:
        uid = new_uid()
        r = await http.post(f"/workitems?{uid}", content=body, headers=headers)
        assert r.status_code == status, r.text
        assert r.json()["message"]
        assert (await http.get(f"/workitems/{uid}", headers=DICOM_JSON)).status_code == 404


async def test_not_acceptable_lists_what_the_server_answers(http):
    r = await http.get("/workitems", headers={"Accept": 'multipart/related; type="application/dicom+json"'})
    assert r.status_code == 406
    assert XML_TYPE in r.json()["message"]


async def test_stow_answers_xml_when_asked(http):
    # dcm4che's stowrs sends Accept: application/dicom+xml
    study, series = dicom_uid(), dicom_uid()
    ds = instance(study, series)
    body, ctype = multipart([part10(ds)])
    r = await http.post("/studies", content=body, headers={"Content-Type": ctype, "Accept": "application/dicom+xml"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/dicom+xml")
    root = ET.fromstring(r.content)
    sop = root.find(f"{NS}DicomAttribute[@tag='00081199']/{NS}Item/{NS}DicomAttribute[@tag='00081155']/{NS}Value")
    assert sop is not None and sop.text == ds.SOPInstanceUID
    # JSON stays the default
    r = await http.post("/studies", content=body, headers={"Content-Type": ctype})
    assert r.headers["content-type"].startswith("application/dicom+json")
    assert r.json()["00081199"]["Value"][0]["00081155"]["Value"] == [ds.SOPInstanceUID]
