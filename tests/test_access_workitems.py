"""Workitems under --auth oidc, through real HTTP with tokens of a real issuer: the reader is the
token's subject (never the requester string), only the claimant acts on a claim, blind reading,
claim roles (arbitration for arbitrators), admin-only create / cancel of SCHEDULED items / reassign,
worklist scoping, ingest reads nothing, and the Actual Human Performers Sequence names the person."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from ups_server.dicom.uids import new_uid

from .access_support import as_, oidc_settings
from .dicom_instances import instance, multipart, part10, uid
from .reading_flow import read_uid, result
from .workitems import DICOM_JSON, code, el, new_workitem, state_change

ACTUAL_PERFORMERS, PERFORMED = "00404035", "00741216"
READER_UUID = "5f0c1a8e-3b6d-4c2e-9a41-7d2b8e6f1c03"  # a Keycloak subject: longer than a Code Value (SH, 16)


@pytest.fixture
def settings(settings, issuer, request, tmp_path):
    """With param "preassigned": the dcm4chee rules, read 1 pre-assigned (performer_only) to READER_UUID."""
    if getattr(request, "param", None) == "preassigned":
        from ups_server.paths import rules_dir

        text_ = (rules_dir() / "dcm4chee-double-reading.yaml").read_text()
        text_ = text_.replace("performer_only: false", "performer_only: true").replace("RADIOLOGIST_1", READER_UUID)
        settings.rules = tmp_path / "preassigned.yaml"
        settings.rules.write_text(text_)
    return oidc_settings(settings, issuer)


async def stow(http, issuer, study: str) -> None:
    body, ctype = multipart([part10(instance(study))])
    r = await http.post("/studies", content=body, headers={"Content-Type": ctype, **as_(issuer, "pacs")})
    assert r.status_code == 200, r.text


async def found(http, headers) -> set[str]:
    r = await http.get("/workitems", headers=headers)
    assert r.status_code in (200, 204), r.text
    return {ds["00080018"]["Value"][0] for ds in (r.json() if r.status_code == 200 else [])}


async def claim(http, headers, uid_: str, requester: str | None = None):
    txn = new_uid()
    path = f"/workitems/{uid_}/state" + (f"/{requester}" if requester else "")
    r = await http.put(path, json=state_change("IN PROGRESS", txn), headers={**DICOM_JSON, **headers})
    return r, txn


async def complete(http, headers, uid_: str, txn: str, value: str, spoof: str | None = None):
    ds = result(value)
    if spoof:  # the client names someone else as the performer
        ds[PERFORMED]["Value"][0][ACTUAL_PERFORMERS] = {"vr": "SQ", "Value": [
            {"00404009": {"vr": "SQ", "Value": [code(spoof)]}, "00404037": el("PN", spoof)}]}
    r = await http.post(f"/workitems/{uid_}?transaction-uid={txn}", json=ds, headers={**DICOM_JSON, **headers})
    assert r.status_code == 200, r.text
    return await http.put(f"/workitems/{uid_}/state", json=state_change("COMPLETED", txn),
                          headers={**DICOM_JSON, **headers})


async def test_double_reading_with_people(http, issuer):
    a, b, arb, pacs = as_(issuer, "reader-a"), as_(issuer, "reader-b"), as_(issuer, "arbiter"), as_(issuer, "pacs")
    study = uid()
    await stow(http, issuer, study)
    one, two, three = read_uid(1, study), read_uid(2, study), read_uid(3, study)
    assert await found(http, a) == {one, two}
    assert (await http.get("/workitems", headers=pacs)).status_code == 403  # ingest reads no workitem

    # the reader is the subject: a spoofed requester names the performing AE only
    r, txn_a = await claim(http, a, one, requester="reader-b")
    assert r.status_code == 200, r.text
    r, _ = await claim(http, a, two)
    assert r.status_code == 409  # reader-a already holds a read of this study (distinct readers)

    # blind reading: B does not see A's read
    assert await found(http, b) == {two}
    assert (await http.get(f"/workitems/{one}", headers=b)).status_code == 404
    r, txn_b = await claim(http, b, two)  # not refused: B is not the reader of 'one'
    assert r.status_code == 200, r.text

    # only the claimant acts on a claim, even with the right Transaction UID
    r = await http.post(f"/workitems/{two}?transaction-uid={txn_b}", json=result("X"), headers={**DICOM_JSON, **a})
    assert r.status_code == 403, r.text
    r = await http.put(f"/workitems/{two}/state", json=state_change("CANCELED", txn_b), headers={**DICOM_JSON, **a})
    assert r.status_code == 403, r.text
    r = await http.post(f"/workitems/{two}/cancelrequest", headers=a)
    assert r.status_code == 403, r.text

    # A completes, naming someone else as the performer: the server names A
    assert (await complete(http, a, one, txn_a, "NORMAL", spoof="RADIOLOGIST_2")).status_code == 200
    done = (await http.get(f"/workitems/{one}", headers=a)).json()[0]
    [person] = done[PERFORMED]["Value"][0][ACTUAL_PERFORMERS]["Value"]
    assert person["00404009"]["Value"][0]["00080100"]["Value"] == ["reader-a"]
    assert person["00404037"]["Value"] == [{"Alphabetic": "reader-a"}]
    assert await found(http, a) == {one}  # B's read is not final: still hidden
    assert (await http.get(f"/workitems/{two}", headers=a)).status_code == 404

    assert (await complete(http, b, two, txn_b, "ABNORMAL")).status_code == 200  # disagree: arbitration
    assert await found(http, a) == {one, two}  # all reads final: both visible; arbitration is not A's
    r, _ = await claim(http, a, three)
    assert r.status_code == 403, r.text  # claim_role arbitrator
    assert await found(http, arb) == {one, two, three}
    r, _ = await claim(http, arb, three)
    assert r.status_code == 200, r.text

    # the audit trail: who did what to read 1, never a Transaction UID
    r = await http.get(http.base_url.copy_with(path="/admin/audit"), params={"workitem": one},
                       headers=as_(issuer, "boss"))
    rows = [(row["what"], row["subject"], row["ae_title"], row["address"]) for row in r.json()]
    assert rows == [("rule first-read", None, None, None), ("claim", "reader-a", "reader-b", "127.0.0.1"),
                    ("update", "reader-a", None, "127.0.0.1"), ("complete", "reader-a", None, "127.0.0.1")]
    assert txn_a not in r.text


async def test_admin_only_actions_and_worklists(http, issuer):
    a, boss = as_(issuer, "reader-a"), as_(issuer, "boss")
    wi = new_uid()
    r = await http.post(f"/workitems?workitem={wi}", json=new_workitem(), headers={**DICOM_JSON, **a})
    assert r.status_code == 403
    r = await http.post(f"/workitems?workitem={wi}", json=new_workitem(), headers={**DICOM_JSON, **boss})
    assert r.status_code == 201, r.text
    # a reader may neither rewrite nor cancel a SCHEDULED workitem
    r = await http.post(f"/workitems/{wi}", json={"00741204": el("LO", "mine")}, headers={**DICOM_JSON, **a})
    assert r.status_code == 403
    assert (await http.post(f"/workitems/{wi}/cancelrequest", headers=a)).status_code == 403
    assert (await http.post(f"/workitems/{wi}/reassign?reader=X", headers=a)).status_code == 403

    # another provider's reader sees and claims nothing of this worklist
    other = as_(issuer, "reader-c", worklists=["NHS_OTHER"])
    assert await found(http, other) == set()
    r = await http.post("/workitems/claim", headers={**DICOM_JSON, **other})
    assert r.status_code == 204
    r, _ = await claim(http, other, wi)
    assert r.status_code == 404
    mine = as_(issuer, "reader-d", worklists=["UPS_SERVER"])  # the default Worklist Label
    assert await found(http, mine) == {wi}

    assert (await http.post(f"/workitems/{wi}/cancelrequest", headers=boss)).status_code == 202


def worklist_url(http) -> str:
    return str(http.base_url).rstrip("/").removesuffix("/dicom-web") + "/api/worklist"


async def mine(http, headers) -> dict[str, str | None]:
    """The reading page's Mine tab: {uid: holder}."""
    r = await http.get(worklist_url(http), params={"tab": "mine"}, headers=headers)
    assert r.status_code == 200, r.text
    return {row["uid"]: row["holder"] for row in r.json()["rows"]}


async def held(server, uid_: str) -> tuple:
    async with server.database.engine.connect() as conn:
        return tuple((await conn.execute(text(
            "SELECT state, transaction_uid, performer_aet, claimant, reader FROM workitems WHERE uid = :uid"),
            {"uid": uid_})).one())


async def test_the_claimant_is_recorded_and_released_by_skip_and_reassign(http, issuer, server):
    a, b, boss = as_(issuer, "reader-a"), as_(issuer, "reader-b"), as_(issuer, "boss")
    study = uid()
    await stow(http, issuer, study)
    one, two = read_uid(1, study), read_uid(2, study)

    # A claims naming B as the requester: the claim is A's, on the reading page too
    r, txn_a = await claim(http, a, one, requester="reader-b")
    assert r.status_code == 200, r.text
    assert await held(server, one) == ("IN PROGRESS", txn_a, "reader-b", "reader-a", "reader-a")
    assert await mine(http, a) == {one: "reader-a"}
    assert await mine(http, b) == {}

    # only the claimant skips; the skip leaves no claimant, reader or performer behind
    r = await http.post(f"/workitems/{one}/skip?transaction-uid={txn_a}", headers=b)
    assert r.status_code == 403, r.text
    r = await http.post(f"/workitems/{one}/skip?transaction-uid={txn_a}", headers=a)
    assert r.status_code == 200, r.text
    assert await held(server, one) == ("SCHEDULED", None, None, None, None)
    async with server.database.engine.connect() as conn:
        skipped = (await conn.execute(text("SELECT reader FROM skipped_reads WHERE workitem_uid = :uid"),
                                      {"uid": one})).scalars().all()
    assert skipped == ["reader-a"]  # the person, not the requester the client named
    assert await mine(http, a) == {}
    r = await http.post(f"/workitems/{one}?transaction-uid={txn_a}", json=result("X"), headers={**DICOM_JSON, **a})
    assert r.status_code == 403, r.text  # SCHEDULED again: a rewrite is for admins

    # A holds no read of the study any more: it may read the other one
    r, txn_two = await claim(http, a, two)
    assert r.status_code == 200, r.text
    # an admin reassigns A's claim: A's Transaction UID no longer acts on it, and it is nobody's
    r = await http.post(f"/workitems/{two}/reassign?reader=RAD_C", headers=boss)
    assert r.status_code == 200, r.text
    assert await held(server, two) == ("SCHEDULED", None, None, None, None)
    assert await mine(http, a) == {}
    r = await http.put(f"/workitems/{two}/state", json=state_change("COMPLETED", txn_two), headers={**DICOM_JSON, **a})
    assert r.status_code == 409 and r.json()["dicomStatus"] == "C310", r.text  # SCHEDULED: A's claim is void
    r, txn_b = await claim(http, b, two)
    assert r.status_code == 200, r.text
    assert await held(server, two) == ("IN PROGRESS", txn_b, None, "reader-b", "reader-b")
    assert await mine(http, b) == {two: "reader-b"}


@pytest.mark.parametrize("settings", ["preassigned"], indirect=True)
async def test_a_reader_preassigned_by_a_long_subject_claims_its_read(http, issuer):
    """performer_only matches the subject in the Long Code Value (0008,0119) of the performer's code,
    in the claim check (a named claim) and in the claimable SQL (claim-next)."""
    study = uid()
    await stow(http, issuer, study)
    uuid_reader, other = as_(issuer, READER_UUID), as_(issuer, "reader-a")
    r = await http.get(f"/workitems/{read_uid(1, study)}", headers=uuid_reader)
    assert r.status_code == 200, r.text
    [performer] = r.json()[0]["00404034"]["Value"][0]["00404009"]["Value"]
    assert performer["00080119"]["Value"] == [READER_UUID] and "00080100" not in performer
    r, _ = await claim(http, other, read_uid(1, study))
    assert r.status_code == 403, r.text  # not its performer
    r, _ = await claim(http, uuid_reader, read_uid(1, study))
    assert r.status_code == 200, r.text  # the named claim: the guard's check
    later = uid()
    await stow(http, issuer, later)
    r = await http.post("/workitems/claim", headers={**DICOM_JSON, **other})
    assert r.status_code == 204, r.text  # reader-a is the performer of neither read
    r = await http.post("/workitems/claim", headers={**DICOM_JSON, **uuid_reader})
    assert r.status_code == 200, r.text  # claim-next (the claimable SQL) finds its pre-assigned read
    assert r.json()[0]["00080018"]["Value"] == [read_uid(1, later)]
