"""The rules at run time: on_store per stored instance, on_completed / on_canceled per state change.

Both run inside the caller's transaction (the store, or the change to COMPLETED / CANCELED).
Each rule runs under a SAVEPOINT: a rule failing at run time is logged and recorded in
``rule_failures`` and never takes the stored instance or the state change with it.

Serialisation: stores of one study hold ``pg_advisory_xact_lock(hashtext(study))`` (taken by
the ingest service); completions of one study hold a second key (``completed:<study>``), so
that "all reads COMPLETED" is evaluated by one transaction at a time after the previous one
committed. Two keys, not one: a completion already holds its workitem row lock, and a store
appending to that workitem takes the row lock after the study lock - one key would deadlock.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, any_, func, insert, literal, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import Text

from ..audit import hooks as audit_hooks
from ..db.tables import rule_failures, rule_workitems, workitems
from ..dicom.dataset import JsonDataset, items
from ..dicom.uids import name_based_uid, new_uid
from ..ingest.model import StoredInstance
from ..metrics import RULE_EFFECTS
from ..ups import tags as t
from ..ups.attributes import CANCELED, COMPLETED, SCHEDULED
from ..ups.errors import Outcome, UPSError
from ..ups.service import Change, UPSService
from .conditions import all_hold
from .guard import membership
from .model import (
    READ_GROUP,
    RECEIVING_AE,
    SENDING_AE,
    SENDING_HOST,
    OnCompletedRule,
    OnStoreRule,
    RuleSet,
    WorkitemTemplate,
)
from .paths import resolve
from .templates import add_reference, build_workitem, input_item, outputs_of, render, study_inputs

log = logging.getLogger(__name__)


@dataclass
class Effects:
    """What rules did (for ``rules apply`` and tests): workitem UIDs created / appended to."""

    created: list[str] = field(default_factory=list)
    appended: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


class RuleEngine:
    def __init__(self, rules: RuleSet, ups: UPSService, retrieve_ae: str, retrieve_url: str | None):
        self.rules = rules
        self.ups = ups
        self.retrieve_ae = rules.defaults.retrieve_ae or retrieve_ae
        self.retrieve_url = rules.defaults.retrieve_url or retrieve_url

    # ---- on_store -----------------------------------------------------------------------------

    async def on_store(self, conn: AsyncConnection, insts: list[StoredInstance],
                       effects: Effects | None = None) -> list[int]:
        """The ingest hook for the instances one store transaction added: every matching
        on_store rule; returns, per instance, how many rules failed for it.

        Fast path: all effects under one SAVEPOINT, one create-or-append per workitem (however
        many of the instances it references). If anything fails, that savepoint is rolled back
        and each (instance, rule) runs again under its own, so that only the failing ones are lost."""
        effects = effects if effects is not None else Effects()
        plan = store_plan(self.rules.on_store, insts)
        if not plan:
            return [0] * len(insts)
        attempt = Effects()
        try:
            async with conn.begin_nested():
                await self._apply_store_plan(conn, plan, attempt)
        except Exception as exc:  # noqa: BLE001 - retried one by one below, where failures are logged
            log.debug("on_store rules for %d instance(s): %s; retrying one by one", len(insts), exc)
        else:
            effects.created += attempt.created
            effects.appended += attempt.appended
            return [0] * len(insts)
        failures = []
        for inst in insts:
            failed = 0
            for rule, uid, group in plan:
                if not any(member is inst for member in group):
                    continue
                try:
                    async with conn.begin_nested():
                        await self._apply_store_rule(conn, rule, uid, [inst], effects)
                except Exception as exc:
                    failed += 1
                    effects.failed.append(rule.id)
                    RULE_EFFECTS.labels(rule.id, "failed").inc()
                    log.exception("on_store rule %s (%s) failed for study %s instance %s", rule.id, rule.source,
                                  inst.study_uid, inst.sop_instance_uid)
                    await _record_failure(conn, rule.id, "on_store", inst.study_uid, str(exc) or repr(exc),
                                          sop=inst.sop_instance_uid)
            failures.append(failed)
        return failures

    async def _apply_store_plan(self, conn: AsyncConnection, plan: list[tuple[OnStoreRule, str, list[StoredInstance]]],
                                effects: Effects) -> None:
        """The fast path of a whole plan, for the workitems that "append" rules name: one statement
        appends the references to those that are SCHEDULED (the common case: later instances of a
        study) without sending a dataset (``UPSService.append_inputs_in``) and tells the state of
        the others: the absent ones are created in one batch (the first instance of a study), those
        no longer SCHEDULED are left as they are; effects audited in one statement. The rest
        (already referencing an instance, other rules) goes through ``_apply_store_rule``."""
        named = Counter(uid for _, uid, _ in plan)
        appends = {uid: study_inputs(group[0].study_uid, [(i.series_uid, i.sop_class_uid, i.sop_instance_uid)
                                                          for i in group], self.retrieve_ae, self.retrieve_url)
                   for rule, uid, group in plan
                   if rule.workitem.input_information == "append" and named[uid] == 1
                   and all(i.study_uid == group[0].study_uid for i in group)}
        done = await self.ups.append_inputs_in(conn, appends)
        written = {row["uid"] for row in done.rows}
        audited, absent = [], []
        for rule, uid, group in plan:
            if uid in written:
                effects.appended.append(uid)
                RULE_EFFECTS.labels(rule.id, "appended").inc()
                audited.append((rule.id, "U", uid, group[0].study_uid, audit_hooks.APPENDED))
            elif uid in done.states and done.states[uid] is None:
                absent.append((rule, uid, group))
            elif uid not in done.states or done.states[uid] == SCHEDULED:
                await self._apply_store_rule(conn, rule, uid, group, effects)
            # else: no longer SCHEDULED, not changed
        audited += await self._create_all(conn, absent, effects)
        await audit_hooks.rule_effects(conn, audited)

    async def _create_all(self, conn: AsyncConnection, absent: list[tuple[OnStoreRule, str, list[StoredInstance]]],
                          effects: Effects) -> list[tuple[str, str, str, str | None, str]]:
        """The workitems of ``absent`` created in one batch (``UPSService.create_many_in``) with their
        rule_workitems rows; the audit rows of those created. A workitem refused fails the batch."""
        if not absent:
            return []
        created, refused = await self.ups.create_many_in(conn, [
            (uid, self._new_workitem(rule.workitem, group), membership(rule.workitem.group, rule.workitem.distinct_readers))
            for rule, uid, group in absent])
        if refused:
            raise next(iter(refused.values()))
        made = set(created)
        absent = [(rule, uid, group) for rule, uid, group in absent if uid in made]
        if absent:
            await conn.execute(pg_insert(rule_workitems).on_conflict_do_nothing(index_elements=["workitem_uid"]),
                               [_rule_workitem(rule, uid, group[0].study_uid) for rule, uid, group in absent])
        for rule, uid, _ in absent:
            effects.created.append(uid)
            RULE_EFFECTS.labels(rule.id, "created").inc()
        return [(rule.id, "C", uid, group[0].study_uid, audit_hooks.CREATED) for rule, uid, group in absent]

    def _new_workitem(self, tpl: WorkitemTemplate, group: list[StoredInstance]) -> JsonDataset:
        """The dataset an on_store rule creates its workitem with, for the instances of ``group``."""
        first = group[0]
        ds = build_workitem(tpl, first.metadata, first.study_uid, datetime.now(UTC), present(special_subjects(first)))
        if tpl.input_information != "none":
            ds[t.INPUT_INFORMATION_SEQUENCE] = {"vr": "SQ", "Value": [self._input(first)]}
            if tpl.input_information == "append":
                self._add_all(ds, group)
        return ds

    def _add_all(self, ds: JsonDataset, group: list[StoredInstance]) -> JsonDataset | None:
        """``ds`` with a reference to each instance of ``group`` in its Input Information; None when
        it referenced them all already."""
        added = [add_reference(ds, i.study_uid, i.series_uid, i.sop_class_uid, i.sop_instance_uid,
                               self.retrieve_ae, self.retrieve_url) for i in group]
        return ds if any(added) else None

    async def _apply_store_rule(self, conn: AsyncConnection, rule: OnStoreRule, uid: str,
                                group: list[StoredInstance], effects: Effects) -> None:
        tpl = rule.workitem

        def add_all(ds: JsonDataset) -> JsonDataset | None:
            return self._add_all(ds, group)

        if tpl.input_information == "append":
            # the common case (later instances of the study): lock, append, tell listeners
            try:
                if await self.ups.amend_in(conn, uid, add_all) is not None:
                    effects.appended.append(uid)
                    RULE_EFFECTS.labels(rule.id, "appended").inc()
                    await audit_hooks.rule_effect(conn, rule.id, False, uid, group[0].study_uid)
                return  # appended, already referenced, or no longer SCHEDULED: not changed
            except UPSError as exc:
                if exc.outcome is not Outcome.NO_SUCH_UPS:
                    raise
        elif (await conn.execute(select(workitems.c.uid).where(workitems.c.uid == uid))).first() is not None:
            return  # single / none: the first instance made it; later ones change nothing
        first = group[0]
        if await self.ups.create_in(conn, uid, self._new_workitem(tpl, group), if_absent=True,
                                    columns=membership(tpl.group, tpl.distinct_readers)) is not None:
            await conn.execute(pg_insert(rule_workitems).values(**_rule_workitem(rule, uid, first.study_uid))
                               .on_conflict_do_nothing(index_elements=["workitem_uid"]))
            effects.created.append(uid)
            RULE_EFFECTS.labels(rule.id, "created").inc()
            await audit_hooks.rule_effect(conn, rule.id, True, uid, first.study_uid)

    def _input(self, inst: StoredInstance) -> JsonDataset:
        return input_item(inst.study_uid, inst.series_uid, [(inst.sop_class_uid, inst.sop_instance_uid)],
                          self.retrieve_ae, self.retrieve_url)

    # ---- on_completed / on_canceled -------------------------------------------------------------

    async def on_change(self, conn: AsyncConnection, change: Change) -> None:
        """UPSService listener: a workitem became COMPLETED (or CANCELED, for ``canceled: proceed``)."""
        if change.kind != "state" or change.state not in (COMPLETED, CANCELED) or not self.rules.on_completed:
            return
        row = change.row
        group, study = row.get("read_group"), row.get("study_uid")
        if not group or not study:
            return
        special = {READ_GROUP: group}
        rules = [r for r in self.rules.on_completed
                 if r.group == group and (change.state == COMPLETED or r.canceled == "proceed")
                 and all_hold(r.when, change.dataset, special)]
        if not rules:
            return
        await conn.execute(select(func.pg_advisory_xact_lock(func.hashtext("completed:" + study))))
        for rule in rules:
            try:
                async with conn.begin_nested():
                    await self._apply_completed_rule(conn, rule, study, change)
            except Exception as exc:
                log.exception("on_completed rule %s (%s) failed for study %s (workitem %s)", rule.id,
                              rule.source, study, change.uid)
                RULE_EFFECTS.labels(rule.id, "failed").inc()
                await _record_failure(conn, rule.id, "on_completed", study, str(exc) or repr(exc), workitem=change.uid)

    async def _apply_completed_rule(self, conn: AsyncConnection, rule: OnCompletedRule, study: str,
                                    change: Change) -> str | None:
        members = (await conn.execute(
            select(workitems.c.uid, workitems.c.state, workitems.c.dataset)
            .where(workitems.c.study_uid == study, workitems.c.read_group == rule.group)
            .order_by(workitems.c.seq)
        )).mappings().all()
        completed = [m for m in members if m["state"] == COMPLETED]
        canceled = [m for m in members if m["state"] == CANCELED]
        if len(completed) + len(canceled) < len(members):
            return None  # a read is still SCHEDULED or IN PROGRESS
        if not self._enough(rule, study, completed, canceled):
            return None
        if rule.disagreement is not None:
            results = {tuple(str(v) for v in resolve(m["dataset"], rule.disagreement.path)) for m in completed}
            if len(results) < 2:
                log.info("rule %s: the %d reads of study %s agree on %s; no %s workitem", rule.id, len(completed),
                         study, rule.disagreement.text, rule.workitem.group or "new")
                return None
        tpl = rule.workitem
        extra = {"StudyInstanceUID": study, READ_GROUP: change.row.get("read_group") or ""}
        source = change.dataset if change.state == COMPLETED else completed[-1]["dataset"]
        uid = name_based_uid(render(tpl.uid, source, extra)) if tpl.uid else new_uid()
        request = items(source, t.REFERENCED_REQUEST_SEQUENCE) or None
        ds = build_workitem(tpl, source, study, datetime.now(UTC), extra, request)
        inputs = self._completed_inputs(tpl.input_information, source, completed)
        if inputs:
            ds[t.INPUT_INFORMATION_SEQUENCE] = {"vr": "SQ", "Value": inputs}
        created = await self.ups.create_in(conn, uid, ds, if_absent=True,
                                           columns=membership(tpl.group, tpl.distinct_readers))
        if created is None:
            return None
        await conn.execute(pg_insert(rule_workitems).values(
            workitem_uid=uid, rule=rule.id, study_uid=study, performer_only=tpl.performer_only,
            claim_role=tpl.claim_role,
            trigger="on_completed",
        ).on_conflict_do_nothing(index_elements=["workitem_uid"]))
        await audit_hooks.rule_effect(conn, rule.id, True, uid, study)
        log.info("rule %s: created %s for study %s", rule.id, uid, study)
        RULE_EFFECTS.labels(rule.id, "created").inc()
        return uid

    @staticmethod
    def _enough(rule: OnCompletedRule, study: str, completed: list[Any], canceled: list[Any]) -> bool:
        """The count / CANCELED policy, once no member is SCHEDULED or IN PROGRESS.

        never: a CANCELED member means nothing is ever created. wait: CANCELED members do not
        count; ``count`` COMPLETED ones are needed (a replacement read, e.g. from ``rules apply``
        with a new rule, lets it proceed); without a count, a CANCELED member blocks. proceed:
        CANCELED members count as done (at least one COMPLETED)."""
        if not completed:
            return False
        if canceled and (rule.canceled == "never" or (rule.canceled == "wait" and rule.count is None)):
            log.info("rule %s: study %s has a CANCELED %s workitem; policy %s: nothing created",
                     rule.id, study, rule.group, rule.canceled)
            return False
        if rule.count is None:
            return True
        done = len(completed) + (len(canceled) if rule.canceled == "proceed" else 0)
        return done == rule.count

    @staticmethod
    def _completed_inputs(mode: str, source: JsonDataset, completed: list[Any]) -> list[JsonDataset]:
        if mode == "copy_input":
            return items(source, t.INPUT_INFORMATION_SEQUENCE)
        if mode == "copy_output":
            return outputs_of(source)
        if mode == "merge_outputs":
            return [item for m in completed for item in outputs_of(m["dataset"])]
        return []


def store_plan(rules: list[OnStoreRule], insts: list[StoredInstance]
               ) -> list[tuple[OnStoreRule, str, list[StoredInstance]]]:
    """(rule, workitem UID, the instances it applies to) in rule order, then first sight."""
    plan: dict[tuple[str, str], tuple[OnStoreRule, str, list[StoredInstance]]] = {}
    for rule in rules:
        for inst in insts:
            special = special_subjects(inst)
            if not all_hold(rule.when, inst.metadata, special):
                continue
            tpl = rule.workitem
            uid = name_based_uid(render(tpl.uid, inst.metadata, present(special))) if tpl.uid else new_uid()
            plan.setdefault((rule.id, uid), (rule, uid, []))[2].append(inst)
    return list(plan.values())


def _rule_workitem(rule: OnStoreRule, uid: str, study_uid: str) -> dict[str, Any]:
    """The rule_workitems row of a workitem an on_store rule created."""
    tpl = rule.workitem
    return {"workitem_uid": uid, "rule": rule.id, "study_uid": study_uid, "performer_only": tpl.performer_only,
            "claim_role": tpl.claim_role, "trigger": "on_store"}


def any_of(column, values: list[str]) -> ColumnElement[bool]:
    """``column`` is one of ``values`` (one array parameter, one plan whatever their number)."""
    return column == any_(literal(values, ARRAY(Text)))


def special_subjects(inst: StoredInstance) -> dict[str, str | None]:
    return {SENDING_AE: inst.source_ae, SENDING_HOST: inst.source_host, RECEIVING_AE: inst.receiving_ae}


def present(special: dict[str, str | None]) -> dict[str, str]:
    return {k: v for k, v in special.items() if v is not None}


async def _record_failure(conn: AsyncConnection, rule: str, trigger: str, study: str | None, error: str, *,
                          sop: str | None = None, workitem: str | None = None) -> None:
    await conn.execute(insert(rule_failures).values(rule=rule, trigger=trigger, study_uid=study,
                                                    sop_instance_uid=sop, workitem_uid=workitem, error=error[:4000]))
