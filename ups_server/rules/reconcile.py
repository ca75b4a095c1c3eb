"""``rules apply``: make the rule workitems of a scope of studies what the on_store rules derive.

For each batch of studies, in ONE transaction holding the studies' locks (the key a store of the
study takes, so a STOW-RS of a study waits for its reconciliation and the other way round):

1. derive (``derive.Derivation``): the workitems the current rules make from the stored instances;
2. read the workitems the rules made for these studies (and any with a derived UID), rows locked;
3. compare and write, through ``UPSService`` so that every listener (events outbox, rules, audit)
   sees each change: create what is missing (one INSERT), change SCHEDULED workitems whose
   references, Procedure Step Label, Worklist Label or group differ (one UPDATE), cancel the
   SCHEDULED ones no rule derives any more (server-side cancel, reason "rule no longer applies"),
   and record which rule made what (one upsert writing only rows that differ).

IN PROGRESS and final workitems are never changed: where they differ from what the rules derive,
they are reported as conflicts. Derivation reads only committed, locked state, so a second run
changes nothing, and two overlapping runs end where one would.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, literal_column, select, text, tuple_, union
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..audit import hooks as audit_hooks
from ..db.tables import instances, rule_failures, rule_workitems, studies, workitems
from ..dicom.dataset import JsonDataset, element
from ..dicom.tags import REFERENCED_SOP_INSTANCE_UID, REFERENCED_SOP_SEQUENCE
from ..ups import tags as t
from ..ups.attributes import CANCELED, COMPLETED, DEFAULT_DISCONTINUATION_REASON, IN_PROGRESS, SCHEDULED
from .derive import Derivation, Derived, any_of
from .engine import RuleEngine, present, special_subjects
from .guard import membership
from .templates import build_workitem, render, set_references, study_inputs

CANCEL_REASON = "rule no longer applies"
# the SOP Instance UIDs of one study ($study) in a workitem's Input Information Sequence
_STUDY_REFS = literal_column(f"""'$."{t.INPUT_INFORMATION_SEQUENCE}".Value[*]"""
                             f""" ? (@."{t.STUDY_INSTANCE_UID}".Value[0] == $study)"""
                             f"""."{REFERENCED_SOP_SEQUENCE}".Value[*]"""
                             f"""."{REFERENCED_SOP_INSTANCE_UID}".Value[0]'::jsonpath""")
_RULE_COLUMNS = ("rule", "study_uid", "performer_only", "claim_role", "trigger")  # of rule_workitems
_RULE_RECORD = ("rule", "rule_study", "performer_only", "claim_role", "trigger")  # the same, as _current reads them
BATCH = 500  # studies per transaction (each holds its study lock until the batch commits)


def cancel_info() -> JsonDataset:
    """What a reconciliation's cancel records (Procedure Step Progress Information)."""
    return {t.REASON_FOR_CANCELLATION: element("LT", CANCEL_REASON),
            t.PROCEDURE_STEP_DISCONTINUATION_REASON_CODE_SEQUENCE: {
                "vr": "SQ", "Value": [copy.deepcopy(DEFAULT_DISCONTINUATION_REASON)]}}


@dataclass
class StudyChanges:
    """What a reconciliation did (or, dry run, would do) to one study's workitems."""

    created: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)  # references added or dropped
    relabelled: list[str] = field(default_factory=list)  # label, worklist label or group changed
    canceled: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)  # "uid (STATE): why", not changed
    failed: list[str] = field(default_factory=list)  # "rule: error"

    def __bool__(self) -> bool:
        return any((self.created, self.references, self.relabelled, self.canceled, self.conflicts, self.failed))


@dataclass
class Report:
    studies: int = 0
    created: int = 0
    amended: int = 0  # workitems whose references, labels or group changed
    references: int = 0
    relabelled: int = 0
    canceled: int = 0
    rule_rows: int = 0  # rule_workitems rows changed (besides those of new workitems)
    conflicts: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    per_study: dict[str, StudyChanges] = field(default_factory=dict)

    @property
    def changed_rows(self) -> int:
        return self.created + self.amended + self.canceled + self.rule_rows

    def summary(self) -> dict[str, list[str]]:
        """The workitem UIDs per kind of change (and the conflicts, failures), as JSON."""
        out: dict[str, list[str]] = {}
        for f in dataclasses.fields(StudyChanges):
            out[f.name] = [x for changes in self.per_study.values() for x in getattr(changes, f.name)]
        return out

    def add(self, study: str, changes: StudyChanges) -> None:
        self.created += len(changes.created)
        self.references += len(changes.references)
        self.relabelled += len(changes.relabelled)
        self.amended += len(set(changes.references) | set(changes.relabelled))
        self.canceled += len(changes.canceled)
        self.conflicts += [f"study {study}: {c}" for c in changes.conflicts]
        self.failures += [f"study {study}: {f}" for f in changes.failed]
        if changes:
            self.per_study[study] = changes


class Reconciler:
    def __init__(self, rules: RuleEngine, batch: int = BATCH):
        self.rules = rules
        self.ups = rules.ups
        self.batch = batch
        self.derivation = Derivation(rules.rules.on_store)
        self.completed_rules = {r.id for r in rules.rules.on_completed}

    async def run(self, db: AsyncEngine, study_uids: list[str], dry_run: bool = False) -> Report:
        """Reconcile ``study_uids`` batch by batch, one transaction each (rolled back: ``dry_run``)."""
        report = Report()
        for start in range(0, len(study_uids), self.batch):
            async with db.connect() as conn:
                trans = await conn.begin()
                try:
                    await self.reconcile(conn, study_uids[start:start + self.batch], report)
                except BaseException:
                    await trans.rollback()
                    raise
                await (trans.rollback() if dry_run else trans.commit())
        return report

    async def on_delete(self, conn: AsyncConnection, study_uid: str) -> Report:
        """The ingest on_delete hook: the study's instances are gone; reconcile its workitems."""
        report = Report()
        await self.reconcile(conn, [study_uid], report)
        return report

    async def reconcile(self, conn: AsyncConnection, study_uids: list[str], report: Report) -> None:
        """One batch, inside ``conn``'s transaction."""
        batch = sorted(set(study_uids))
        report.studies += len(batch)
        await lock_studies(conn, batch)
        derived = await self.derivation.derive(conn, batch)
        current = await self._current(conn, batch, [d.uid for d in derived])
        changes = {study: StudyChanges() for study in batch}
        creates: list[tuple[Derived, JsonDataset]] = []
        amends: list[tuple[Derived, dict[str, Any], set[str]]] = []
        keep: list[Derived] = []  # derived and SCHEDULED (or new) whose rule record differs
        now = datetime.now(UTC)
        for d in derived:
            row = current.pop(d.uid, None)
            study = changes.setdefault(d.study_uid, StudyChanges())
            if row is None:
                creates.append((d, self._new_dataset(d, now)))
                continue
            what = self._differences(d, row)
            if row["state"] == SCHEDULED:
                if _rule_record(d) != tuple(row[c] for c in _RULE_RECORD):
                    keep.append(d)
                if what:
                    amends.append((d, row, what))
                    if "references" in what:
                        study.references.append(d.uid)
                    if what - {"references"}:
                        study.relabelled.append(d.uid)
            elif row["state"] == IN_PROGRESS and what:
                study.conflicts.append(f"{d.uid} (IN PROGRESS): {', '.join(sorted(what))} differ; claimed, "
                                       "not changed")
            elif row["state"] == CANCELED:
                study.conflicts.append(f"{d.uid} (CANCELED): rule {d.rule.id} derives it; final, not re-created")
        cancels = []
        for uid, row in current.items():  # made by a rule, derived by none now
            if not self._made_on_store(row):
                continue
            study = changes.setdefault(row["rule_study"], StudyChanges())
            if row["state"] == SCHEDULED:
                cancels.append(row)
                study.canceled.append(uid)
            elif row["state"] in (IN_PROGRESS, COMPLETED):
                study.conflicts.append(f"{uid} ({row['state']}): no rule derives it any more; "
                                       f"{'claimed' if row['state'] == IN_PROGRESS else 'final'}, not canceled")
        created = await self._create(conn, creates, changes)
        keep += [d for d, _ in creates if d.uid in created]
        await self._load_datasets(conn, [row for _, row, _ in amends] + cancels)
        await self.ups.amend_many_in(conn, [(row, self._amended(d, row, what), membership(*_group(d)))
                                            for d, row, what in amends])
        report.rule_rows += await self._record_rules(conn, keep, created)
        info = cancel_info()
        for row in cancels:
            await self.ups.cancel_scheduled_in(conn, row, info)
        await audit_hooks.rule_effects(conn, [
            *((d.rule.id, "C", d.uid, d.study_uid, "workitem created (rules apply)")
              for d, _ in creates if d.uid in created),
            *((d.rule.id, "U", d.uid, d.study_uid, f"{', '.join(sorted(what))} reconciled (rules apply)")
              for d, _, what in amends),
            *((row["rule"] or "?", "U", row["uid"], row["rule_study"], f"canceled: {CANCEL_REASON} (rules apply)")
              for row in cancels)])
        for study, change in changes.items():
            report.add(study, change)

    # ---- reading --------------------------------------------------------------------------

    async def _current(self, conn: AsyncConnection, batch: list[str], derived: list[str]) -> dict[str, dict]:
        """The workitems rules made for the batch's studies, and any other with a derived UID,
        without their datasets (what is compared comes out of it in SQL): rows locked, so a claim
        or N-SET waits until the batch commits."""
        study = func.coalesce(rule_workitems.c.study_uid, workitems.c.study_uid)
        cols = (*(c for c in workitems.c if c.name != "dataset"),
                workitems.c.dataset[t.PROCEDURE_STEP_LABEL]["Value"][0].astext.label("label"),
                workitems.c.dataset[t.WORKLIST_LABEL]["Value"][0].astext.label("worklist"),
                func.jsonb_path_query_array(workitems.c.dataset, _STUDY_REFS,
                                            func.jsonb_build_object("study", study)).label("refs"),
                rule_workitems.c.rule, rule_workitems.c.trigger, rule_workitems.c.performer_only,
                rule_workitems.c.claim_role,
                rule_workitems.c.study_uid.label("rule_study"))
        made = (select(*cols).select_from(workitems.join(rule_workitems,
                                                         rule_workitems.c.workitem_uid == workitems.c.uid))
                .where(any_of(rule_workitems.c.study_uid, batch)).order_by(workitems.c.seq)
                .with_for_update(of=workitems))
        rows = {r["uid"]: dict(r) for r in (await conn.execute(made)).mappings()}
        others = [uid for uid in derived if uid not in rows]
        if others:
            same_uid = (select(*cols).select_from(workitems.outerjoin(
                rule_workitems, rule_workitems.c.workitem_uid == workitems.c.uid))
                .where(any_of(workitems.c.uid, others)).order_by(workitems.c.seq).with_for_update(of=workitems))
            rows.update({r["uid"]: dict(r) for r in (await conn.execute(same_uid)).mappings()})
        return rows

    @staticmethod
    async def _load_datasets(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
        """The datasets of the rows that will change (locked already)."""
        if rows:
            q = select(workitems.c.uid, workitems.c.dataset).where(any_of(workitems.c.uid, [r["uid"] for r in rows]))
            datasets = dict((await conn.execute(q)).all())
            for row in rows:
                row["dataset"] = datasets[row["uid"]]

    def _made_on_store(self, row: dict[str, Any]) -> bool:
        if row["trigger"] is not None:
            return row["trigger"] == "on_store"
        return row["rule"] is not None and row["rule"] not in self.completed_rules  # made before triggers were kept

    # ---- comparing ------------------------------------------------------------------------

    def _wanted(self, d: Derived) -> tuple[str, str]:
        tpl = d.rule.workitem
        extra = present(special_subjects(d.first))
        label = render(tpl.label, d.first.metadata, extra)
        worklist = render(tpl.worklist_label, d.first.metadata, extra) if tpl.worklist_label else ""
        return label, worklist or self.ups.default_worklist_label

    def _differences(self, d: Derived, row: dict[str, Any]) -> set[str]:
        """What of the workitem differs from what ``d`` derives."""
        label, worklist = self._wanted(d)
        what = set()
        if row["label"] != label:
            what.add("label")
        if row["worklist"] != worklist:
            what.add("worklist label")
        if (row["read_group"], row["distinct_readers"]) != _group(d):
            what.add("group")
        if d.rule.workitem.input_information != "none" and set(row["refs"]) != {sop for _, _, sop in d.refs}:
            what.add("references")
        return what

    def _amended(self, d: Derived, row: dict[str, Any], what: set[str]) -> JsonDataset:
        """The workitem's dataset made what ``d`` derives."""
        label, worklist = self._wanted(d)
        ds = copy.deepcopy(row["dataset"])
        ds[t.PROCEDURE_STEP_LABEL] = element("LO", label)
        ds[t.WORKLIST_LABEL] = element("LO", worklist)
        if "references" in what:
            set_references(ds, d.study_uid, d.refs, self.rules.retrieve_ae, self.rules.retrieve_url)
        return ds

    def _new_dataset(self, d: Derived, now: datetime) -> JsonDataset:
        tpl = d.rule.workitem
        ds = build_workitem(tpl, d.first.metadata, d.study_uid, now, present(special_subjects(d.first)))
        if tpl.input_information != "none":
            ds[t.INPUT_INFORMATION_SEQUENCE] = {"vr": "SQ", "Value": study_inputs(
                d.study_uid, d.refs, self.rules.retrieve_ae, self.rules.retrieve_url)}
        return ds

    # ---- writing --------------------------------------------------------------------------

    async def _create(self, conn: AsyncConnection, creates: list[tuple[Derived, JsonDataset]],
                      changes: dict[str, StudyChanges]) -> set[str]:
        """One INSERT for the batch's new workitems; a dataset the UPS service refuses is a rule
        failure (recorded in rule_failures), the others are created."""
        created, refused = await self.ups.create_many_in(
            conn, [(d.uid, ds, membership(*_group(d))) for d, ds in creates])
        for d, _ in creates:
            if d.uid in refused:
                error = refused[d.uid]
                changes[d.study_uid].failed.append(f"{d.rule.id}: {error}")
                await conn.execute(insert(rule_failures).values(
                    rule=d.rule.id, trigger="on_store", study_uid=d.study_uid,
                    sop_instance_uid=d.first.sop_instance_uid, error=str(error)[:4000]))
            elif d.uid in created:
                changes[d.study_uid].created.append(d.uid)
        return set(created)

    async def _record_rules(self, conn: AsyncConnection, keep: list[Derived], created: set[str]) -> int:
        """Which rule makes each kept workitem: one upsert writing only rows that differ.
        The number of existing rows changed."""
        if not keep:
            return 0
        cols = _RULE_COLUMNS
        rows = [{"workitem_uid": d.uid, **dict(zip(cols, _rule_record(d), strict=True))} for d in keep]
        stmt = pg_insert(rule_workitems)
        stmt = stmt.on_conflict_do_update(
            index_elements=["workitem_uid"], set_={c: stmt.excluded[c] for c in cols},
            where=tuple_(*(rule_workitems.c[c] for c in cols)).is_distinct_from(
                tuple_(*(stmt.excluded[c] for c in cols))))
        written = (await conn.execute(stmt.returning(rule_workitems.c.workitem_uid), rows)).scalars()
        return sum(1 for uid in written if uid not in created)


def _rule_record(d: Derived) -> tuple[Any, ...]:
    """The rule_workitems values of a derived workitem (in ``_RULE_COLUMNS`` order)."""
    return d.rule.id, d.study_uid, d.rule.workitem.performer_only, d.rule.workitem.claim_role, "on_store"


def _group(d: Derived) -> tuple[str | None, bool]:
    """The group a derived workitem is in, and whether its readers must be distinct."""
    return d.rule.workitem.group, d.rule.workitem.distinct_readers


async def lock_studies(conn: AsyncConnection, study_uids: list[str]) -> None:
    """The study locks of ``ingest.index.lock_study`` for many studies, in UID order (the order
    a store of several studies takes them in), in one statement."""
    await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(u)) FROM unnest(CAST(:uids AS text[])) "
                            "WITH ORDINALITY AS s(u, n) ORDER BY n"), {"uids": sorted(study_uids)})


# ---- scopes ---------------------------------------------------------------------------------

async def scope(db: AsyncEngine, *, study_uids: list[str] | None = None, since: datetime | None = None,
                worklist_label: str | None = None) -> list[str]:
    """The studies of a scope, in UID order. ``study_uids``: those; ``since``: studies with an
    instance stored since then; ``worklist_label``: studies with a rule workitem on that worklist;
    none of them: every study stored or with a rule workitem (a study whose instances are gone)."""
    if study_uids is not None:
        return sorted(set(study_uids))
    if since is not None:
        query = select(instances.c.study_uid).where(instances.c.created_at >= since).distinct()
    elif worklist_label is not None:
        query = (select(rule_workitems.c.study_uid).distinct()
                 .select_from(rule_workitems.join(workitems, workitems.c.uid == rule_workitems.c.workitem_uid))
                 .where(workitems.c.worklist_label == worklist_label, rule_workitems.c.study_uid.is_not(None)))
    else:
        query = union(select(studies.c.study_uid),
                      select(rule_workitems.c.study_uid).where(rule_workitems.c.study_uid.is_not(None)))
    async with db.connect() as conn:
        return sorted((await conn.execute(query)).scalars())

