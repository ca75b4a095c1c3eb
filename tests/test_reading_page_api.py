"""The reading page's server side over real HTTP: the worklist listing (tabs, filters, counts,
keyset paging), the skip and reassign extensions, the result codes of the rule file, and the
reader statistics (JSON and CSV)."""

from __future__ import annotations

import csv
import io

from sqlalchemy import text

from ups_server.rules.loader import load_rules
from ups_server.rules.wiring import rules_path

from .dicom_instances import instance, part10, uid
from .reading_flow import claim, read, read_uid, result, stow, workitem


def root(http) -> str:
    return str(http.base_url).rstrip("/").removesuffix("/dicom-web")


async def update(http, wi: str, txn: str):
    return await http.post(f"/workitems/{wi}?transaction-uid={txn}", json=result("NORMAL"),
                           headers={"Content-Type": "application/dicom+json"})


async def listing(http, **params):
    r = await http.get(f"{root(http)}/api/worklist", params=params)
    assert r.status_code == 200, r.text
    return r.json()


async def test_page_and_assets_are_served_outside_the_base_path(http):
    r = await http.get(f"{root(http)}/ui/")
    assert r.status_code == 200 and "Reading worklist" in r.text
    assert "default-src 'self'" in r.headers["content-security-policy"]
    r = await http.get(f"{root(http)}/ui/worklist.js")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
    for name in ("__init__.py", "..%2Fserver.py", "nope.js"):
        assert (await http.get(f"{root(http)}/ui/{name}")).status_code == 404


async def test_config_offers_the_result_codes_of_the_rule_file(http, settings):
    r = await http.get(f"{root(http)}/ui/config.json")
    assert r.status_code == 200
    body = r.json()
    declared = load_rules(rules_path(settings)).results
    assert [c["value"] for c in body["results"]] == [c.value for c in declared] == ["NORMAL", "RECALL"]
    assert body["dicomweb"] == "/dicom-web" and body["viewer_url"] is None and body["auth"] == "none"


async def test_tabs_counts_filters_and_keyset_paging(http):
    studies = [uid() for _ in range(3)]
    for i, study in enumerate(studies):
        await stow(http, [part10(instance(study, accession=f"ACC-P{i}", patient_id=f"PID-{i}",
                                          PatientName=f"Name{i}^Pat"))])
    r, _ = await claim(http, read_uid(1, studies[0]), "ANNA")
    assert r.status_code == 200

    everything = await listing(http, tab="all")
    assert everything["counts"] == {"SCHEDULED": 5, "IN PROGRESS": 1, "COMPLETED": 0, "CANCELED": 0}
    mine = await listing(http, tab="mine", reader="ANNA")
    assert [row["uid"] for row in mine["rows"]] == [read_uid(1, studies[0])]
    assert mine["rows"][0]["holder"] == "ANNA" and mine["rows"][0]["study_date"] == "20261123"
    # Available to ANNA: SCHEDULED, without the other read of the study she holds a read of
    available = await listing(http, tab="available", reader="ANNA")
    assert {row["uid"] for row in available["rows"]} == {read_uid(n, s) for n in (1, 2) for s in studies[1:]}
    assert (await listing(http, tab="all", q="name1"))["counts"]["SCHEDULED"] == 2  # patient name prefix
    assert {row["accession_number"] for row in (await listing(http, tab="all", q="ACC-P2"))["rows"]} == {"ACC-P2"}
    assert (await listing(http, tab="all", q="PID-0", state="IN PROGRESS"))["rows"][0]["holder"] == "ANNA"
    assert (await listing(http, tab="all", priority="HIGH"))["rows"] == []

    # pages of 2 in priority/age order follow each other without gaps or repeats
    seen, after = [], None
    while True:
        page = await listing(http, tab="all", limit=2, **({"after": after} if after else {}))
        seen += [row["uid"] for row in page["rows"]]
        after = page["next"]
        if not after:
            break
    assert seen == [row["uid"] for row in everything["rows"]] and len(seen) == 6


async def test_worklist_refuses_bad_filters_with_a_reason(http):
    for params, reason in (({"tab": "nobody"}, "tab="), ({"limit": "0"}, "limit"), ({"limit": "x"}, "limit"),
                           ({"tab": "mine"}, "reader"), ({"after": "1.x"}, "cursor"),
                           ({"state": "DONE"}, "state="), ({"reader": "R" * 65}, "longer")):
        r = await http.get(f"{root(http)}/api/worklist", params=params)
        assert r.status_code == 400 and reason in r.json()["message"], (params, r.text)


async def test_skip_needs_the_claim_and_records_the_reader(http, server):
    study = uid()
    await stow(http, [part10(instance(study))])
    wi = read_uid(1, study)
    r = await http.post(f"/workitems/{wi}/skip")
    assert r.status_code == 409 and "not IN PROGRESS" in r.json()["message"]  # SCHEDULED: nothing to skip
    r, txn = await claim(http, wi, "ANNA")
    assert (await http.post(f"/workitems/{wi}/skip")).status_code == 400  # no Transaction UID
    assert (await http.post(f"/workitems/{wi}/skip?transaction-uid=1.2.3")).status_code == 400  # wrong one
    assert (await workitem(http, wi))["00741000"]["Value"] == ["IN PROGRESS"]
    r = await http.post(f"/workitems/{wi}/skip?transaction-uid={txn}")
    assert r.status_code == 200, r.text
    assert (await workitem(http, wi))["00741000"]["Value"] == ["SCHEDULED"]
    async with server.database.engine.connect() as conn:
        skipped = (await conn.execute(text("SELECT reader, study_uid FROM skipped_reads"))).all()
        held = (await conn.execute(text("SELECT transaction_uid, performer_aet, reader FROM workitems "
                                        "WHERE uid = :uid"), {"uid": wi})).one()
    assert skipped == [("ANNA", study)] and tuple(held) == (None, None, None)
    # the void Transaction UID no longer completes it; a new claim by name is allowed
    assert (await update(http, wi, txn)).status_code == 409  # SCHEDULED again: C310
    r, _ = await claim(http, wi, "ANNA")
    assert r.status_code == 200, r.text


async def test_reassign_schedules_the_read_for_another_reader(http):
    study = uid()
    await stow(http, [part10(instance(study))])
    wi = read_uid(1, study)
    r, txn = await claim(http, wi, "ANNA")
    assert (await http.post(f"/workitems/{wi}/reassign")).status_code == 400  # no reader
    r = await http.post(f"/workitems/{wi}/reassign?reader=BEN")
    assert r.status_code == 200, r.text
    ds = await workitem(http, wi)
    assert ds["00741000"]["Value"] == ["SCHEDULED"]
    performer = ds["00404034"]["Value"][0]
    assert performer["00404009"]["Value"][0]["00080100"]["Value"] == ["BEN"]
    mine = await listing(http, tab="mine", reader="BEN")
    assert [row["uid"] for row in mine["rows"]] == [wi]
    assert (await update(http, wi, txn)).status_code == 409  # ANNA's claim is void
    await read(http, wi, "BEN", "NORMAL")
    r = await http.post(f"/workitems/{wi}/reassign?reader=ANNA")
    assert r.status_code == 400 and (await workitem(http, wi))["00741000"]["Value"] == ["COMPLETED"]


async def test_reader_statistics_in_json_and_csv(http):
    agree, disagree = uid(), uid()
    for study in (agree, disagree):
        await stow(http, [part10(instance(study))])
    await read(http, read_uid(1, agree), "ANNA", "NORMAL")
    await read(http, read_uid(2, agree), "BEN", "NORMAL")
    await read(http, read_uid(1, disagree), "BEN", "NORMAL")
    await read(http, read_uid(2, disagree), "ANNA", "RECALL")  # -> arbitration
    r, _ = await claim(http, read_uid(3, disagree), "CARL")  # an arbitration is not a read

    r = await http.get(f"{root(http)}/admin/stats")
    assert r.status_code == 200, r.text
    stats = r.json()
    assert [w["days"] for w in stats["windows"]] == [7, 28]
    for window in stats["windows"]:
        overall = window["overall"]
        assert overall["reads_completed"] == 4 and overall["first_reads"] == 2 and overall["second_reads"] == 2
        assert overall["agreement"] == 0.5 and overall["arbitration_share"] == 0.5
        assert overall["median_seconds"] is not None and overall["median_seconds"] >= 0
        readers = {r["reader"]: r for r in window["readers"]}
        assert set(readers) == {"ANNA", "BEN"}
        assert (readers["ANNA"]["first_reads"], readers["ANNA"]["second_reads"]) == (1, 1)
        assert readers["ANNA"]["reads_completed"] == 2 and readers["ANNA"]["agreement"] == 0.5

    r = await http.get(f"{root(http)}/admin/stats?format=csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    lines = list(csv.DictReader(io.StringIO(r.text)))
    assert [(row["days"], row["reader"]) for row in lines] == [
        ("7", "(all)"), ("7", "ANNA"), ("7", "BEN"), ("28", "(all)"), ("28", "ANNA"), ("28", "BEN")]
    assert lines[0]["reads_completed"] == "4" and lines[0]["agreement"] == "0.5"
    assert (await http.get(f"{root(http)}/admin/stats?format=xml")).status_code == 400
