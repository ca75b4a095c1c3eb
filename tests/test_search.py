"""Search (GET /workitems, C-FIND's matcher): every Required key of UPS-FIND-03, each matching
type of UPS-FIND-04, result contents (UPS-QS-04/09, UPS-FIND-02), paging (UPS-QS-06), 204, 400."""

from __future__ import annotations

import pytest

from ups_server.dicom.query import query_from_identifier

from .ups_client import claim, value, warning_text
from .workitems import DICOM_JSON, code, el, new_workitem

A, B, C = (f"1.2.826.0.1.3680043.10.7.{i}" for i in (1, 2, 3))
PUSH = "1.2.840.10008.5.1.4.34.6.1"


def sq(*items: dict) -> dict:
    return {"vr": "SQ", "Value": list(items)}


WORKITEMS = {
    A: new_workitem(**{
        "00741200": el("CS", "HIGH"), "00741204": el("LO", "Read CT"), "00741202": el("LO", "WL-A"),
        "00404005": el("DT", "20261123100000"), "00404011": el("DT", "20261123120000"),
        "00404041": el("CS", "READY"), "00100010": el("PN", "Doe^Jane"), "00100020": el("LO", "PAT-1"),
        "00100021": el("LO", "HOSP-A"), "00100030": el("DA", "19800101"), "00100040": el("CS", "F"),
        "00380010": el("LO", "ADM-1"), "00380014": sq({"00400031": el("UT", "ADM-NS-A")}),
        "00404025": sq(code("ST-A")), "00404026": sq(code("CL-A")), "00404027": sq(code("GEO-A")),
        "00404034": sq({"00404009": sq(code("DR-A")), "00404037": el("PN", "Doctor^A"),
                        "00404036": el("LO", "Org")}),
        "00404018": sq(code("WC-READ", "DCM")), "00400400": el("LT", "type 3 comment"),
        "0040A370": sq(
            {"0020000D": el("UI", "1.2.826.0.1.3680043.10.7.100"), "00080050": el("SH", "ACC-1"),
             "00401001": el("SH", "RP-1"), "00321033": el("LO", "Radiology"),
             "00080051": sq({"00400031": el("UT", "ACC-NS")})},
            {"0020000D": el("UI", "1.2.826.0.1.3680043.10.7.101"), "00080050": el("SH", "ACC-2"),
             "00401001": el("SH", "RP-2")}),
        "00741224": sq({"00081150": el("UI", PUSH), "00081155": el("UI", "1.2.826.0.1.3680043.10.7.50")}),
    }),
    B: new_workitem(**{
        "00741200": el("CS", "LOW"), "00741204": el("LO", "Read MR"), "00741202": el("LO", "WL-B"),
        "00404005": el("DT", "20261124100000"), "00404041": el("CS", "INCOMPLETE"),
        "00100010": el("PN", "DOE^John"), "00100020": el("LO", "PAT_2"), "00100021": el("LO", "HOSP-B"),
        "00100030": el("DA", "19900615"), "00100040": el("CS", "M"), "00380010": el("LO", "ADM-2"),
        "00404025": sq(code("ST-B")), "00404034": sq({"00404009": sq(code("DR-B")),
                                                      "00404037": el("PN", "Doctor^B"),
                                                      "00404036": el("LO", "Org")}),
        "00404018": sq(code("WC-ARB")),
        "0040A370": sq({"0020000D": el("UI", "1.2.826.0.1.3680043.10.7.102"), "00080050": el("SH", "ACC-3"),
                        "00401001": el("SH", "RP-1")}),
    }),
    C: new_workitem(**{
        "00741204": el("LO", "Arbitration"), "00404005": el("DT", "20261125100000+0100"),
        "00100010": el("PN", "Smith^Anna"), "00100020": el("LO", "PAT%3"),
        "0020000D": el("UI", "1.2.826.0.1.3680043.10.7.103"),
    }),
}
ALL = {A, B, C}


@pytest.fixture
async def seeded(http):
    for uid, ds in WORKITEMS.items():
        r = await http.post(f"/workitems?{uid}", json=ds, headers=DICOM_JSON)
        assert r.status_code == 201, r.text
    await claim(http, C, "1.2.826.0.1.3680043.10.7.999")
    return http


async def found(http, params) -> tuple[int, set[str]]:
    r = await http.get("/workitems", params=params, headers=DICOM_JSON)
    assert r.status_code in (200, 204), r.text
    return r.status_code, {value(d, "00080018") for d in r.json()} if r.status_code == 200 else set()


# (query parameters, expected workitems, checklist rule)
CASES = [
    # SOP Instance UID (U): single value, List of UID (comma in HTTP), hex tag form
    ({"SOPInstanceUID": A}, {A}, "UPS-FIND-03/04 single value"),
    ({"SOPInstanceUID": f"{A},{B}"}, {A, B}, "UPS-FIND-04 list of UID / UPS-QS-02"),
    ({"00080018": C}, {C}, "UPS-QS-02 hex tag"),
    ({"ScheduledProcedureStepPriority": "HIGH"}, {A}, "UPS-FIND-03 priority"),
    ({"ProcedureStepLabel": "Read*"}, {A, B}, "UPS-FIND-04 wildcard *"),
    ({"ProcedureStepLabel": "Read ?T"}, {A}, "UPS-FIND-04 wildcard ?"),
    ({"ProcedureStepLabel": "read ct"}, set(), "UPS-FIND-04 single value is case-sensitive"),
    ({"WorklistLabel": "WL-B"}, {B}, "UPS-FIND-03 worklist label"),
    ({"ScheduledStationNameCodeSequence.CodeValue": "ST-A"}, {A}, "UPS-FIND-03 station name"),
    ({"ScheduledStationClassCodeSequence.CodeValue": "CL-A"}, {A}, "UPS-FIND-03 station class"),
    ({"ScheduledStationGeographicLocationCodeSequence.CodeValue": "GEO-A"}, {A}, "UPS-FIND-03 station geo"),
    ({"ScheduledHumanPerformersSequence.HumanPerformerCodeSequence.CodeValue": "DR-B"}, {B},
     "UPS-FIND-03 human performer"),
    ({"00404034.00404009.00080100": "DR-A"}, {A}, "UPS-QS-02 dotted hex path"),
    ({"00404034.00404009.00080100": "DR-*"}, {A, B}, "UPS-FIND-04 wildcard in a sequence"),
    ({"ScheduledProcedureStepStartDateTime": "20261123100000"}, {A}, "UPS-FIND-04 DT single value"),
    ({"ScheduledProcedureStepStartDateTime": "20261123-20261124"}, {A, B}, "UPS-FIND-04 range a-b"),
    ({"ScheduledProcedureStepStartDateTime": "-20261123235959"}, {A}, "UPS-FIND-04 range -b"),
    ({"ScheduledProcedureStepStartDateTime": "20261124-"}, {B, C}, "UPS-FIND-04 range a-"),
    ({"ScheduledProcedureStepStartDateTime": "20261125090000"}, {C}, "UPS-FIND-04 DT honours UTC offset"),
    ({"ScheduledProcedureStepStartDateTime": "20261125040000-0500"}, {C}, "UPS-FIND-04 query with offset"),
    ({"ScheduledProcedureStepStartDateTime": "20261125100000"}, set(), "UPS-FIND-04 DT honours UTC offset"),
    ({"ExpectedCompletionDateTime": "20261123-20261123"}, {A}, "UPS-FIND-03 expected completion"),
    ({"ScheduledProcedureStepModificationDateTime": "20000101-"}, ALL, "modification datetime range"),
    ({"ScheduledWorkitemCodeSequence.CodeValue": "WC-READ",
      "ScheduledWorkitemCodeSequence.CodingSchemeDesignator": "DCM"}, {A}, "UPS-FIND-03 workitem code"),
    ({"ScheduledWorkitemCodeSequence.CodeValue": "WC-READ",
      "ScheduledWorkitemCodeSequence.CodingSchemeDesignator": "99LOCAL"}, set(), "UPS-FIND-04 sequence"),
    ({"InputReadinessState": "INCOMPLETE"}, {B}, "UPS-FIND-03 input readiness"),
    ({"ProcedureStepState": "IN PROGRESS"}, {C}, "UPS-FIND-03 state"),
    ({"ProcedureStepState": "SCHEDULED"}, {A, B}, "UPS-FIND-03 state"),
    ({"PatientName": "doe^jane"}, {A}, "UPS-FIND-04 PN case-insensitive"),
    ({"PatientName": "DOE*"}, {A, B}, "UPS-FIND-04 PN wildcard"),
    ({"PatientName": "*ann*"}, {C}, "UPS-FIND-04 PN wildcard"),
    ({"PatientID": "PAT-1"}, {A}, "UPS-FIND-03 patient id"),
    ({"PatientID": "PAT_2"}, {B}, "LIKE metacharacter _ is literal"),
    ({"PatientID": "PAT_*"}, {B}, "LIKE metacharacter _ is literal in a wildcard"),
    ({"PatientID": "PAT%"}, set(), "LIKE metacharacter % is literal"),
    ({"PatientID": "PAT%3"}, {C}, "value with %"),
    ({"PatientID": "PAT?2"}, {B}, "UPS-FIND-04 wildcard ?"),
    ({"IssuerOfPatientID": "HOSP-B"}, {B}, "UPS-FIND-03 issuer of patient id"),
    ({"PatientBirthDate": "19800101"}, {A}, "UPS-FIND-03 birth date"),
    ({"PatientBirthDate": "19850101-"}, {B}, "UPS-FIND-04 DA range"),
    ({"PatientSex": "F"}, {A}, "UPS-FIND-03 sex"),
    ({"AdmissionID": "ADM-2"}, {B}, "UPS-FIND-03 admission id"),
    ({"IssuerOfAdmissionIDSequence.LocalNamespaceEntityID": "ADM-NS-A"}, {A}, "UPS-FIND-03 issuer of adm"),
    ({"ReferencedRequestSequence.AccessionNumber": "ACC-2"}, {A}, "UPS-FIND-04 any item matches"),
    ({"0040A370.00080050": "ACC-3"}, {B}, "UPS-QS-02 hex path"),
    ({"ReferencedRequestSequence.RequestedProcedureID": "RP-1"}, {A, B}, "UPS-FIND-03 requested proc id"),
    ({"ReferencedRequestSequence.AccessionNumber": "ACC-2",
      "ReferencedRequestSequence.RequestedProcedureID": "RP-1"}, set(), "UPS-FIND-04 one item matches all"),
    ({"ReferencedRequestSequence.AccessionNumber": "ACC-1",
      "ReferencedRequestSequence.RequestedProcedureID": "RP-1"}, {A}, "UPS-FIND-04 one item matches all"),
    ({"ReferencedRequestSequence.RequestingService": "Radiology"}, {A}, "UPS-FIND-03 requesting service"),
    ({"ReferencedRequestSequence.IssuerOfAccessionNumberSequence.LocalNamespaceEntityID": "ACC-NS"}, {A},
     "UPS-FIND-03 issuer of accession number"),
    ({"ReplacedProcedureStepSequence.ReferencedSOPInstanceUID": "1.2.826.0.1.3680043.10.7.50"}, {A},
     "UPS-FIND-03 replaced procedure step"),
    ({"StudyInstanceUID": "1.2.826.0.1.3680043.10.7.103"}, {C}, "study instance uid"),
    ({"StudyInstanceUID": "1.2.826.0.1.3680043.10.7.100"}, set(), "top-level study uid is not the request's"),
    ({"PatientName": ""}, ALL, "UPS-FIND-04 universal"),
    ({"PatientName": "*"}, ALL, "UPS-FIND-04 * is universal"),
    ({"ReferencedRequestSequence": ""}, ALL, "UPS-FIND-04 empty sequence is universal"),
    ({}, ALL, "UPS-FIND-07 no keys: all (HTTP)"),
    ({"PatientID": "PAT-1", "ProcedureStepState": "SCHEDULED", "ScheduledProcedureStepPriority": "HIGH"}, {A},
     "keys combine with AND"),
]


@pytest.mark.parametrize(("params", "expected", "rule"), CASES, ids=[c[2] + " " + str(c[0]) for c in CASES])
async def test_matching(seeded, params, expected, rule):
    status, uids = await found(seeded, params)
    assert uids == expected, rule
    assert status == (200 if expected else 204), rule  # UPS-QS-06: no results -> 204


RETURN_KEYS_1_2 = ("00080016", "00080018", "00741200", "00741204", "00741202", "00741210", "00404025",
                   "00404026", "00404027", "00404034", "00404005", "00404018", "00404041", "00404021",
                   "0020000D", "00100010", "00100020", "00100021", "00100024", "00101002", "00100030",
                   "00100040", "00380010", "00380014", "00081080", "00081084", "0040A370", "00741000",
                   "00741002")


async def test_result_contents(seeded):
    # UPS-QS-04: Type 1/2 return keys + matching keys; type 3 only when asked; UPS-QS-09
    r = await seeded.get("/workitems", params={"SOPInstanceUID": A, "ExpectedCompletionDateTime": ""},
                         headers=DICOM_JSON)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/dicom+json")
    (ds,) = r.json()
    for tag in RETURN_KEYS_1_2:
        assert tag in ds, tag
    assert value(ds, "00404011") == "20261123120000"  # a matching key (Return Key Type 3)
    assert "00400400" not in ds  # Type 3 not asked for
    assert "00741224" not in ds
    assert "00081195" not in ds


@pytest.mark.parametrize("include", ["CommentsOnTheScheduledProcedureStep", "00400400",
                                     "00400400,ReplacedProcedureStepSequence"])
async def test_includefield(seeded, include):
    # UPS-QS-03: includefield by keyword / tag / comma list
    r = await seeded.get("/workitems", params={"SOPInstanceUID": A, "includefield": include}, headers=DICOM_JSON)
    (ds,) = r.json()
    assert value(ds, "00400400") == "type 3 comment"
    assert ("00741224" in ds) == ("Replaced" in include)


async def test_includefield_repeated_and_all(seeded):
    r = await seeded.get("/workitems?SOPInstanceUID=" + A + "&includefield=00400400&includefield=00741224",
                         headers=DICOM_JSON)
    (ds,) = r.json()
    assert "00400400" in ds and "00741224" in ds
    r = await seeded.get("/workitems", params={"SOPInstanceUID": A, "includefield": "all"}, headers=DICOM_JSON)
    (ds,) = r.json()
    assert [value(i, "00080050") for i in ds["0040A370"]["Value"]] == ["ACC-1", "ACC-2"]
    assert value(ds, "00400400") == "type 3 comment"


@pytest.mark.parametrize("include", ["all", "00081195", "TransactionUID", "all,00081195"])
async def test_transaction_uid_never_returned(seeded, include):
    # UPS-QS-09 / UPS-TXN-07: not even for the claimed workitem with includefield
    r = await seeded.get("/workitems", params={"includefield": include}, headers=DICOM_JSON)
    assert r.status_code == 200
    assert len(r.json()) == 3
    assert all("00081195" not in ds for ds in r.json())


async def test_transaction_uid_cannot_be_queried(seeded):
    # Table CC.2.5-3: Transaction UID "cannot be queried": matching on it never finds a workitem
    status, uids = await found(seeded, {"TransactionUID": "1.2.826.0.1.3680043.10.7.999"})
    assert (status, uids) == (204, set())


async def test_paging(seeded):
    # UPS-QS-06: limit/offset, Warning with the remaining count, stable order, 204 past the end
    r = await seeded.get("/workitems", params={"limit": "1"}, headers=DICOM_JSON)
    assert r.status_code == 200 and len(r.json()) == 1
    assert warning_text(r) == "There are 2 additional results that can be requested"
    pages = []
    for offset in range(3):
        r = await seeded.get("/workitems", params={"limit": "1", "offset": str(offset)}, headers=DICOM_JSON)
        pages.append(value(r.json()[0], "00080018"))
    assert pages == [A, B, C]  # creation order, identical on every request
    assert warning_text(r) is None
    r = await seeded.get("/workitems", params={"offset": "3"}, headers=DICOM_JSON)
    assert r.status_code == 204 and r.content == b""
    r = await seeded.get("/workitems", params={"offset": "1"}, headers=DICOM_JSON)
    assert [value(d, "00080018") for d in r.json()] == [B, C]
    r = await seeded.get("/workitems", params={"limit": "0"}, headers=DICOM_JSON)
    assert r.status_code == 204


async def test_fuzzymatching_not_supported(seeded):
    # UPS-QS-05: literal matching + Warning
    r = await seeded.get("/workitems", params={"PatientName": "Doe^Jane", "fuzzymatching": "true"},
                         headers=DICOM_JSON)
    assert r.status_code == 200
    assert {value(d, "00080018") for d in r.json()} == {A}
    assert warning_text(r) == ("The fuzzymatching parameter is not supported. "
                               "Only literal matching has been performed.")
    r = await seeded.get("/workitems", params={"PatientName": "Doe", "fuzzymatching": "true"},
                         headers=DICOM_JSON)
    assert r.status_code == 204  # no fuzzy (prefix) matching performed


@pytest.mark.parametrize(("param", "text"), [
    ("emptyvaluematching",
     "The emptyvaluematching parameter is not supported. Empty Value Matching has not been performed."),
    ("multiplevaluematching",
     "The multiplevaluematching parameter is not supported. Multiple Value Matching has not been performed."),
])
async def test_other_matching_options_not_supported(seeded, param, text):
    # UPS-QS-05 (same pattern as fuzzymatching)
    r = await seeded.get("/workitems", params={"PatientID": "PAT-1", param: "true"}, headers=DICOM_JSON)
    assert r.status_code == 200 and warning_text(r) == text
    r = await seeded.get("/workitems", params={"PatientID": "PAT-1", param: "false"}, headers=DICOM_JSON)
    assert r.status_code == 200 and warning_text(r) is None


@pytest.mark.parametrize("query", [
    "limit=abc", "offset=-1", "limit=1&limit=2", "PatientID=a&PatientID=b", "NoSuchKeyword=1",
    "ScheduledProcedureStepStartDateTime=yesterday", "ScheduledProcedureStepStartDateTime=2026-2027-2028",
    "PatientBirthDate=1980", "fuzzymatching=maybe", "ReferencedRequestSequence=x",
    "PatientName.CodeValue=x", "includefield=NoSuchKeyword", "0040A370.00080050=a&0040A370.00080050=b",
])
async def test_bad_query_syntax(seeded, query):
    # UPS-QS-07 / UPS-QS-02: invalid syntax -> 400 with a message
    r = await seeded.get(f"/workitems?{query}", headers=DICOM_JSON)
    assert r.status_code == 400, r.text
    assert r.json()["message"]


async def test_not_acceptable(seeded):
    r = await seeded.get("/workitems", headers={"Accept": "application/xml"})
    assert r.status_code == 406


async def test_dimse_identifier_same_matches_only_requested_keys(seeded, server):
    # UPS-FIND-02: only the requested keys; UPS-QS-10 / UPS-SOP-06: same result set as HTTP;
    # UID list as multiple values; sequence matching with item keys.
    identifier = {
        "00080018": {"vr": "UI", "Value": [A, B]},
        "00100010": {"vr": "PN"},
        "00081195": {"vr": "UI"},
        "0040A370": {"vr": "SQ", "Value": [{"00401001": {"vr": "SH", "Value": ["RP-1"]},
                                            "00080050": {"vr": "SH"}}]},
    }
    page = await server.ups.search(query_from_identifier(identifier))
    results, remaining = page.datasets, page.remaining
    assert remaining == 0
    assert [set(ds) for ds in results] == [{"00080018", "00100010", "0040A370"}] * 2
    assert [value(ds, "00080018") for ds in results] == [A, B]
    assert results[0]["0040A370"]["Value"] == [{"00080050": el("SH", "ACC-1"), "00401001": el("SH", "RP-1")},
                                               {"00080050": el("SH", "ACC-2"), "00401001": el("SH", "RP-2")}]
    _, http_uids = await found(seeded, {"SOPInstanceUID": f"{A},{B}",
                                        "ReferencedRequestSequence.RequestedProcedureID": "RP-1"})
    assert http_uids == {value(ds, "00080018") for ds in results}


async def test_claim_filter(seeded):
    # claim-next extension: the search keys of the query string pick the workitem
    r = await seeded.post("/workitems/claim?requester=R1&PatientID=PAT_2", headers=DICOM_JSON)
    assert r.status_code == 200, r.text
    assert value(r.json()[0], "00080018") == B
    r = await seeded.post("/workitems/claim?PatientID=PAT_2", headers=DICOM_JSON)
    assert r.status_code == 204  # B is no longer SCHEDULED
    r = await seeded.post("/workitems/claim?NoSuchKeyword=1", headers=DICOM_JSON)
    assert r.status_code == 400, r.text


async def test_lower_case_tags_in_items_are_matched(http):
    # DICOM JSON keys are hex: a client writing "0020000d" inside an item is still found
    uid = "1.2.826.0.1.3680043.10.7.20"
    ds = new_workitem(**{"0040a370": sq({"0020000d": el("UI", "1.2.826.0.1.3680043.10.7.21"),
                                         "00080050": el("SH", "ACC-L")})})
    assert (await http.post(f"/workitems?{uid}", json=ds, headers=DICOM_JSON)).status_code == 201
    _, uids = await found(http, {"ReferencedRequestSequence.StudyInstanceUID": "1.2.826.0.1.3680043.10.7.21"})
    assert uids == {uid}


async def test_performer_codes_match_as_in_the_dataset(http):
    # the performer codes are matched on a column PostgreSQL derives from the dataset: same answers,
    # case-sensitive, one item matching all its keys, codes too long for the column
    long_code = "L" * 300
    uids = {name: f"1.2.826.0.1.3680043.10.7.{30 + i}" for i, name in enumerate(("two", "lower", "long"))}
    datasets = {
        "two": new_workitem(**{"00404034": sq({"00404009": sq(code("DR-X", "S1"))},
                                              {"00404009": sq(code("DR-Y", "S2"), code("DR-Z", "S2"))})}),
        "lower": new_workitem(**{"00404034": sq({"00404009": sq({"00080100": el("SH", "dr-x")})})}),
        "long": new_workitem(**{"00404034": sq({"00404009": sq(code(long_code))})}),
    }
    for name, ds in datasets.items():
        assert (await http.post(f"/workitems?{uids[name]}", json=ds, headers=DICOM_JSON)).status_code == 201
    key = "ScheduledHumanPerformersSequence.HumanPerformerCodeSequence."
    for params, expected in [
        ({key + "CodeValue": "DR-X"}, {"two"}),  # case-sensitive
        ({key + "CodeValue": "DR-Z"}, {"two"}),  # any item
        ({key + "CodeValue": "dr-x"}, {"lower"}),
        ({key + "CodeValue": "DR-X", key + "CodingSchemeDesignator": "S1"}, {"two"}),
        ({key + "CodeValue": "DR-X", key + "CodingSchemeDesignator": "S2"}, set()),  # not in one item
        ({key + "CodeValue": "DR-Y", key + "CodingSchemeDesignator": "S2"}, {"two"}),
        ({key + "CodeValue": "DR-?"}, {"two"}),
        ({key + "CodeValue": long_code}, {"long"}),
        ({key + "CodeValue": long_code[:256]}, set()),
    ]:
        _, found_uids = await found(http, params)
        assert found_uids & set(uids.values()) == {uids[n] for n in expected}, params


async def test_performer_codes_are_bounded_and_found(http):
    # they are stored whole in the worklist index: at most 64 distinct codes of 1,024 bytes in all
    # (0106 / 400 beyond, the workitem unchanged); within that, found by any of them
    uid = "1.2.826.0.1.3680043.10.7.40"
    codes = [f"{i:02d}" + "C" * 14 for i in range(64)]  # 64 x 16 = 1,024 bytes
    ds = new_workitem(**{"00404034": sq(*({"00404009": sq(code(c))} for c in codes))})
    r = await http.post(f"/workitems?{uid}", json=ds, headers=DICOM_JSON)
    assert r.status_code == 201, r.text
    _, uids = await found(http, {"00404034.00404009.00080100": codes[-1]})
    assert uids == {uid}
    for more in (codes + ["65"], codes[:-1] + ["X" * 17], [f"{i:03d}" + "C" * 197 for i in range(40)]):
        body = {"00404034": sq(*({"00404009": sq(code(c))} for c in more))}
        r = await http.post("/workitems?1.2.826.0.1.3680043.10.7.41", json=new_workitem(**body), headers=DICOM_JSON)
        assert r.status_code == 400 and "performer codes" in r.json()["message"], r.text
    txn = "1.2.826.0.1.3680043.10.7.42"
    await claim(http, uid, txn)
    r = await http.post(f"/workitems/{uid}?transaction-uid={txn}", json=body, headers=DICOM_JSON)
    assert r.status_code == 400 and "performer codes" in r.json()["message"], r.text
    _, uids = await found(http, {"00404034.00404009.00080100": codes[-1]})
    assert uids == {uid}
