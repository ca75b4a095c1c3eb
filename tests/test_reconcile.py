"""``rules apply`` as a reconciliation: after a rule change or instance removal the workitems are
made what the rules derive (created, references added and dropped, relabelled, canceled with
"rule no longer applies"); claimed and final workitems are reported, never changed; a second run
changes nothing; overlapping runs and a concurrent store end where one run would."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys

import pytest
from sqlalchemy import delete, func, select

from ups_server.db.tables import audit_events, event_outbox, instances, rule_workitems, workitems
from ups_server.dicom.uids import GLOBAL_SUBSCRIPTION, name_based_uid
from ups_server.rules.derive import Derivation
from ups_server.rules.reconcile import CANCEL_REASON, Reconciler, Report, scope
from ups_server.rules.wiring import build_engine

from .dicom_instances import instance, part10, uid
from .oidc_issuer import bearer
from .reading_flow import claim, read_uid, referenced_sops

V1 = """
version: 1
on_store:
  - id: first-read
    workitem: {uid: "1-{StudyInstanceUID}", group: read, label: "First read {AccessionNumber}", worklist_label: READS}
  - id: second-read
    workitem: {uid: "2-{StudyInstanceUID}", group: read, label: "Second read {AccessionNumber}", worklist_label: READS}
"""
# first-read narrowed to MG, second-read relabelled, a new rule for MG
V2 = """
version: 1
on_store:
  - id: first-read
    when: [{attribute: Modality, equals: MG}]
    workitem: {uid: "1-{StudyInstanceUID}", group: read, label: "First read {AccessionNumber}", worklist_label: READS}
  - id: second-read
    workitem: {uid: "2-{StudyInstanceUID}", group: read, label: "Second opinion {AccessionNumber}",
               worklist_label: SECOND}
  - id: ai-read
    when: [{attribute: Modality, equals: MG}]
    workitem: {uid: "5-{StudyInstanceUID}", group: ai, label: "AI {AccessionNumber}"}
"""
PROGRESS, CANCEL_DT, REASON, DISCONTINUATION = "00741002", "00404052", "00741238", "0074100E"
LABEL, WORKLIST_LABEL, STATE = "00741204", "00741202", "00741000"


@pytest.fixture
def settings(settings, tmp_path):
    settings.rules = tmp_path / "v1.yaml"
    settings.rules.write_text(V1)
    return settings


def reconciler(server, settings, tmp_path, rules: str, batch: int = 500) -> Reconciler:
    path = tmp_path / f"rules-{abs(hash(rules))}.yaml"
    path.write_text(rules)
    return Reconciler(build_engine(dataclasses.replace(settings, rules=path), server.ups), batch=batch)


async def store(server, *datasets) -> None:
    for ds in datasets:
        await server.ingest.store(part10(ds))


async def rows(server, **where) -> dict[str, dict]:
    async with server.database.engine.connect() as conn:
        q = select(workitems).where(*(workitems.c[k] == v for k, v in where.items()))
        return {r["uid"]: dict(r) for r in (await conn.execute(q)).mappings()}


async def count(server, table) -> int:
    async with server.database.engine.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(table))).scalar_one()


async def subscribe_globally(server, aet: str = "WATCHER") -> None:
    await server.events.subscribe(GLOBAL_SUBSCRIPTION, aet, False, via_http=True)


async def events_of(server, wi: str) -> list[tuple[int, str | None]]:
    """(event type, Procedure Step State) of the outbox rows about ``wi``, in order."""
    async with server.database.engine.connect() as conn:
        q = select(event_outbox.c.event_type, event_outbox.c.info).where(event_outbox.c.workitem_uid == wi)
        return [(r.event_type, (r.info.get(STATE) or {}).get("Value", [None])[0])
                for r in await conn.execute(q.order_by(event_outbox.c.id))]


async def audited(server, wi: str) -> list[tuple[str, str, str]]:
    """(action, what, detail) of the audit rows about ``wi``, in order."""
    async with server.database.engine.connect() as conn:
        q = (select(audit_events.c.action, audit_events.c.what, audit_events.c.detail)
             .where(audit_events.c.workitem_uid == wi).order_by(audit_events.c.id))
        return [tuple(r) for r in await conn.execute(q)]


def _first(ds, tag):
    return (ds.get(tag) or {}).get("Value", [None])[0]


async def test_rule_change_cancels_what_is_no_longer_derived_and_creates_the_new(server, settings, tmp_path):
    ct, mg = uid(), uid()
    ct_insts = [instance(ct, modality="CT", accession="A-CT"), instance(ct, modality="CT", accession="A-CT")]
    await store(server, *ct_insts, instance(mg, modality="MG", accession="A-MG"))
    assert set(await rows(server)) == {read_uid(n, s) for n in (1, 2) for s in (ct, mg)}
    await subscribe_globally(server)  # the reads exist already: subscribed to each from now on

    report = await reconciler(server, settings, tmp_path, V2).run(server.database.engine,
                                                                  await scope(server.database.engine))

    after = await rows(server)
    assert after[read_uid(1, ct)]["state"] == "CANCELED"  # first-read no longer holds for CT
    assert after[read_uid(1, mg)]["state"] == "SCHEDULED"
    for study, acc in ((ct, "A-CT"), (mg, "A-MG")):
        second = after[read_uid(2, study)]
        assert second["state"] == "SCHEDULED" and second["procedure_step_label"] == f"Second opinion {acc}"
        assert second["worklist_label"] == "SECOND"
        assert _first(second["dataset"], LABEL) == f"Second opinion {acc}"
    ai = name_based_uid(f"5-{mg}")
    assert after[ai]["state"] == "SCHEDULED" and after[ai]["read_group"] == "ai"
    assert name_based_uid(f"5-{ct}") not in after
    assert (report.created, report.canceled, report.relabelled, report.conflicts) == (1, 1, 2, [])

    # the cancel meets the final state requirements, with the reason
    progress = after[read_uid(1, ct)]["dataset"][PROGRESS]["Value"][0]
    assert progress[REASON]["Value"] == [CANCEL_REASON]
    assert _first(progress, CANCEL_DT) and progress[DISCONTINUATION]["Value"]
    # the same listeners as any other change: the subscriber hears IN PROGRESS then CANCELED
    assert [state for _, state in await events_of(server, read_uid(1, ct))] == ["IN PROGRESS", "CANCELED"]
    assert await events_of(server, ai)  # auto-subscribed at creation: a State Report

    async with server.database.engine.connect() as conn:
        made = dict((await conn.execute(select(rule_workitems.c.workitem_uid, rule_workitems.c.rule))).all())
    assert made[ai] == "ai-read"
    # and the audit trail, in the same transactions
    assert (await audited(server, read_uid(1, ct)))[-1][:2] == ("U", "rule first-read")
    assert CANCEL_REASON in (await audited(server, read_uid(1, ct)))[-1][2]
    assert (await audited(server, ai)) == [("C", "rule ai-read", "workitem created (rules apply)")]

    before, outbox = await rows(server), await count(server, event_outbox)
    again = await reconciler(server, settings, tmp_path, V2).run(server.database.engine,
                                                                 await scope(server.database.engine))
    assert again.changed_rows == 0 and again.conflicts == [] and again.studies == 2
    assert await rows(server) == before and await count(server, event_outbox) == outbox


async def test_removed_instances_lose_their_references_and_missing_ones_are_added(server, settings, tmp_path):
    study = uid()
    kept, gone = instance(study), instance(study)
    await store(server, kept, gone)
    async with server.database.engine.begin() as conn:  # an instance removed from the index
        await conn.execute(delete(instances).where(instances.c.sop_instance_uid == gone.SOPInstanceUID))
    late = instance(study)  # and one stored before the rules made reads of it (index only)
    await store(server, late)
    async with server.database.engine.begin() as conn:
        await conn.execute(delete(workitems).where(workitems.c.uid == read_uid(2, study)))

    report = await reconciler(server, settings, tmp_path, V1).run(server.database.engine, [study])

    after = await rows(server)
    assert sorted(referenced_sops(after[read_uid(1, study)]["dataset"])) == sorted(
        [kept.SOPInstanceUID, late.SOPInstanceUID])
    assert sorted(referenced_sops(after[read_uid(2, study)]["dataset"])) == sorted(
        [kept.SOPInstanceUID, late.SOPInstanceUID])
    assert (report.created, report.references, report.canceled) == (1, 1, 0)


async def test_claimed_and_final_workitems_are_reported_never_changed(http, server, settings, tmp_path):
    study = uid()
    await store(server, instance(study, modality="CT"), instance(study, modality="CT"))
    r, _ = await claim(http, read_uid(1, study), "reader1")
    assert r.status_code == 200, r.text
    async with server.database.engine.begin() as conn:  # one instance gone: the references differ too
        await conn.execute(delete(instances).where(instances.c.study_uid == study,
                                                   instances.c.seq == select(func.max(instances.c.seq))
                                                   .where(instances.c.study_uid == study).scalar_subquery()))
    before = await rows(server)

    report = await reconciler(server, settings, tmp_path, V2).run(server.database.engine, [study])

    after = await rows(server)
    assert after[read_uid(1, study)] == before[read_uid(1, study)]  # IN PROGRESS: untouched
    assert [c for c in report.conflicts if read_uid(1, study) in c and "IN PROGRESS" in c]
    assert len(referenced_sops(after[read_uid(2, study)]["dataset"])) == 1  # SCHEDULED: reconciled
    again = await reconciler(server, settings, tmp_path, V2).run(server.database.engine, [study])
    assert again.changed_rows == 0 and len(again.conflicts) == 1  # still reported, still not changed


async def test_overlapping_reconciliations_and_a_store_end_as_one_run(server, settings, tmp_path):
    studies = [uid() for _ in range(6)]
    for s in studies:
        await store(server, instance(s, modality="CT"), instance(s, modality="MG"))
    await subscribe_globally(server)
    runs = [reconciler(server, settings, tmp_path, V2, batch=2) for _ in range(2)]
    engine = server.database.engine
    late = instance(studies[3], modality="MG")
    results = await asyncio.gather(runs[0].run(engine, studies[:4]), runs[1].run(engine, studies[2:]),
                                   store(server, late))
    reports: list[Report] = [r for r in results if isinstance(r, Report)]

    # together, the two runs did each change exactly once
    assert sum(r.created for r in reports) == len(studies)  # one ai-read per study (all have MG)
    assert sum(r.relabelled for r in reports) == len(studies)  # second-read relabelled once each
    after = await rows(server)
    for s in studies:
        assert after[name_based_uid(f"5-{s}")]["state"] == "SCHEDULED"
        assert after[read_uid(2, s)]["procedure_step_label"] == "Second opinion ACC-1"
        assert [state for _, state in await events_of(server, name_based_uid(f"5-{s}"))] == ["SCHEDULED"]
    # the late instance is referenced, whichever of the store and the reconciliation came first
    for wi in (read_uid(1, studies[3]), read_uid(2, studies[3]), name_based_uid(f"5-{studies[3]}")):
        assert late.SOPInstanceUID in referenced_sops(after[wi]["dataset"]), wi
    # one more run finds nothing to do
    again = await reconciler(server, settings, tmp_path, V2).run(engine, studies)
    assert again.changed_rows == 0, again


async def test_sql_and_python_derive_the_same(server, settings, tmp_path):
    rules = """
version: 1
on_store:
  - id: list
    when: [{attribute: Modality, equals: [MG, CR]}]
    workitem: {uid: "1-{StudyInstanceUID}", label: L}
  - id: regex-not
    when: [{attribute: SOPClassUID, matches: "1\\\\.2\\\\.840\\\\.10008\\\\.5\\\\.1\\\\.4\\\\.1\\\\.1\\\\.88\\\\..*", not: true}]
    workitem: {uid: "2-{StudyInstanceUID}", label: L}
  - id: multi-valued
    when: [{attribute: ImageType, equals: DERIVED}]
    workitem: {uid: "3-{StudyInstanceUID}", label: L, input_information: single}
  - id: absent-and-regex
    when: [{attribute: BodyPartExamined, absent: true}, {attribute: AccessionNumber, matches: "A[0-9]+"}]
    workitem: {uid: "4-{StudyInstanceUID}", label: L}
  - id: special
    when: [{attribute: SendingApplicationEntityTitle, present: true}]
    workitem: {uid: "5-{StudyInstanceUID}", label: L}
"""
    studies = [uid() for _ in range(4)]
    await store(server, instance(studies[0], modality="MG", accession="A12"),
                instance(studies[0], modality="CT", ImageType=["ORIGINAL", "DERIVED"], BodyPartExamined="BREAST"),
                instance(studies[1], modality="CR", accession="B1", ImageType=["DERIVED"]),
                instance(studies[2], modality="OT", accession="A7x"))
    await server.ingest.store(part10(instance(studies[3], accession="A9")), source_ae="MODALITY")
    rec = reconciler(server, settings, tmp_path, rules)
    assert len(rec.derivation.in_sql) == 5
    python = Derivation(rec.derivation.rules)
    python.in_sql, python.in_python = {}, list(range(5))
    async with server.database.engine.connect() as conn:
        in_sql = await rec.derivation.derive(conn, studies)
        in_python = await python.derive(conn, studies)
    as_set = lambda ds: sorted((d.uid, d.rule.id, d.first.sop_instance_uid, tuple(d.refs)) for d in ds)
    assert as_set(in_sql) == as_set(in_python)
    assert {d.rule.id for d in in_sql} == {"list", "regex-not", "multi-valued", "absent-and-regex", "special"}


def _cli(settings, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "ups_server", *args, "--database-url", settings.database_url,
           "--data-dir", str(settings.data_dir)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


async def test_cli_dry_run_prints_the_plan_then_apply_then_no_change(server, settings, tmp_path):
    ct = uid()
    await store(server, instance(ct, modality="CT"))
    v2 = tmp_path / "v2.yaml"
    v2.write_text(V2)
    before = await rows(server)
    dry = _cli(settings, "rules", "apply", "--rules", str(v2), "--study", ct, "--dry-run", "--verbose")
    assert dry.returncode == 0, dry.stderr
    assert f"study {ct}: labels/group {read_uid(2, ct)}; cancel {read_uid(1, ct)}" in dry.stdout
    assert "would create 0 workitem(s)" in dry.stdout and "would cancel 1" in dry.stdout
    assert await rows(server) == before

    done = _cli(settings, "rules", "apply", "--rules", str(v2), "--worklist-label", "READS")
    assert done.returncode == 0, done.stderr
    assert "cancel 1" in done.stdout and "no change" not in done.stdout
    again = _cli(settings, "rules", "apply", "--rules", str(v2), "--all")
    assert again.returncode == 0 and "no change" in again.stdout, again.stdout
    since = _cli(settings, "rules", "apply", "--rules", str(v2), "--since", "yesterday")
    assert since.returncode == 2 and "ISO 8601" in since.stderr


async def test_study_deletion_removes_instances_and_reconciles_the_reads(http, server, settings):
    study, other = uid(), uid()
    await store(server, instance(study), instance(study), instance(other))
    r, _ = await claim(http, read_uid(1, study), "reader1")
    assert r.status_code == 200, r.text
    before = await rows(server)
    blobs = settings.data_dir / "blobs"
    assert len(list(blobs.rglob(f"{study}/**/*.dcm"))) == 2

    r = await http.delete(f"/studies/{study}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["instances"] == 2 and body["canceled"] == [read_uid(2, study)]
    assert [c for c in body["conflicts"] if read_uid(1, study) in c and "IN PROGRESS" in c]

    assert (await http.get(f"/studies/{study}/metadata")).status_code == 404
    assert [f for f in blobs.rglob("*.dcm") if study in str(f)] == []
    after = await rows(server)
    assert after[read_uid(1, study)] == before[read_uid(1, study)]  # claimed: untouched
    canceled = after[read_uid(2, study)]
    assert canceled["state"] == "CANCELED"
    assert canceled["dataset"][PROGRESS]["Value"][0][REASON]["Value"] == [CANCEL_REASON]
    assert {w: after[w]["state"] for w in (read_uid(1, other), read_uid(2, other))} == {
        read_uid(1, other): "SCHEDULED", read_uid(2, other): "SCHEDULED"}
    assert (await http.get(f"/studies/{other}/metadata")).status_code == 200

    r = await http.delete(f"/studies/{study}")
    assert r.status_code == 404 and "not stored" in r.json()["message"]

    done = _cli(settings, "studies", "delete", other)
    assert done.returncode == 0, done.stderr
    assert "deleted 1 instance(s)" in done.stdout and f"cancel {read_uid(1, other)} {read_uid(2, other)}" in done.stdout
    assert {w: r["state"] for w, r in (await rows(server, study_uid=other)).items()} == {
        read_uid(1, other): "CANCELED", read_uid(2, other): "CANCELED"}
    missing = _cli(settings, "studies", "delete", other)
    assert missing.returncode == 1 and "not stored" in missing.stderr


@pytest.mark.oidc
async def test_only_admin_deletes_under_oidc(http, server, oidc_issuer):
    study = uid()
    await store(server, instance(study))
    r = await http.delete(f"/studies/{study}", headers=bearer(oidc_issuer.token(roles=("reader", "ingest"))))
    assert r.status_code == 403 and "admin" in r.json()["message"]
    assert await count(server, instances) == 1 and len(await rows(server, study_uid=study)) == 2
    r = await http.delete(f"/studies/{study}", headers=bearer(oidc_issuer.token("admin-1", roles=("admin",))))
    assert r.status_code == 200 and r.json()["instances"] == 1
    async with server.database.engine.connect() as conn:
        q = select(audit_events.c.action, audit_events.c.subject, audit_events.c.detail).where(
            audit_events.c.study_uid == study, audit_events.c.what == "delete study")
        assert [tuple(r) for r in await conn.execute(q)] == [("D", "admin-1", "1 instance(s) deleted")]
