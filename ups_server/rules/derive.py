"""What the on_store rules derive for a batch of stored studies: the workitems (UID, rule, the
instance their templates read, the instances they reference), computed from the instance index.

A rule whose conditions compile to SQL (``sqlconditions``) and whose UID names only the study
costs one grouped query per batch (rules with the same conditions share it); the others are
evaluated in Python, as at store time, over the batch's instances read once.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, any_, func, literal, select
from sqlalchemy.dialects.postgresql import ARRAY, aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import BigInteger

from ..db.tables import instances
from ..dicom.tags import STUDY_INSTANCE_UID
from ..dicom.uids import name_based_uid
from ..ingest.model import StoredInstance
from .engine import any_of, present, special_subjects, store_plan
from .model import OnStoreRule
from .sqlconditions import compile_all
from .templates import render

Ref = tuple[str, str, str]  # series UID, SOP Class UID, SOP Instance UID


@dataclass
class Derived:
    uid: str
    rule: OnStoreRule
    first: StoredInstance  # the first instance (store order) the rule holds for: templates read it
    refs: list[Ref] = field(default_factory=list)  # what its Input Information references

    @property
    def study_uid(self) -> str:
        return self.first.study_uid


def _names_only_the_study(template: str) -> bool:
    fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    return fields <= {"StudyInstanceUID", STUDY_INSTANCE_UID}


_COLUMNS = (instances.c.seq, instances.c.study_uid, instances.c.series_uid, instances.c.sop_instance_uid,
            instances.c.sop_class_uid, instances.c.metadata, instances.c.source_ae, instances.c.source_host,
            instances.c.receiving_ae)


def _stored(row) -> StoredInstance:
    return StoredInstance(row.study_uid, row.series_uid, row.sop_instance_uid, row.sop_class_uid, row.metadata,
                          row.source_ae, row.source_host, row.receiving_ae)


class Derivation:
    """The on_store rules, split once into those SQL evaluates and those Python does."""

    def __init__(self, rules: list[OnStoreRule]):
        self.rules = rules
        self.in_sql: dict[int, ColumnElement[bool]] = {}
        for n, rule in enumerate(rules):
            where = compile_all(rule.when)
            if where is not None and rule.workitem.uid is not None and _names_only_the_study(rule.workitem.uid):
                self.in_sql[n] = where
        self.in_python = [n for n in range(len(rules)) if n not in self.in_sql]

    def describe(self) -> str:
        sql = [self.rules[n].id for n in self.in_sql]
        py = [self.rules[n].id for n in self.in_python]
        return f"rules evaluated in SQL: {', '.join(sql) or 'none'}; in Python: {', '.join(py) or 'none'}"

    async def derive(self, conn: AsyncConnection, studies: list[str]) -> list[Derived]:
        """Every workitem the rules derive for ``studies``, in rule order, then study order."""
        found: dict[int, list[Derived]] = {}
        if self.in_sql:
            found.update(await self._in_sql(conn, studies))
        if self.in_python:
            found.update(await self._in_python(conn, studies))
        out: list[Derived] = []
        seen: set[str] = set()
        for n in range(len(self.rules)):
            for d in found.get(n, []):
                if d.uid not in seen:  # two rules naming one workitem: the first one makes it
                    seen.add(d.uid)
                    out.append(d)
        return out

    async def _in_sql(self, conn: AsyncConnection, studies: list[str]) -> dict[int, list[Derived]]:
        """One grouped query per distinct condition set: per study, the first matching instance
        and every matching one in store order; then one query for the first instances' rows."""
        by_where: dict[tuple, list[int]] = {}
        wheres: dict[tuple, ColumnElement[bool]] = {}
        for n, where in self.in_sql.items():
            key = tuple(self.rules[n].when)
            by_where.setdefault(key, []).append(n)
            wheres[key] = where
        groups: dict[tuple, list] = {}
        for key, where in wheres.items():
            stmt = (select(instances.c.study_uid, func.min(instances.c.seq).label("first"),
                           _in_store_order(instances.c.series_uid).label("series"),
                           _in_store_order(instances.c.sop_class_uid).label("classes"),
                           _in_store_order(instances.c.sop_instance_uid).label("sops"))
                    .where(any_of(instances.c.study_uid, studies), where)
                    .group_by(instances.c.study_uid).order_by(instances.c.study_uid))
            groups[key] = list(await conn.execute(stmt))
        firsts = sorted({row.first for rows in groups.values() for row in rows})
        first_rows = {}
        if firsts:
            stmt = select(*_COLUMNS).where(instances.c.seq == any_(literal(firsts, ARRAY(BigInteger))))
            first_rows = {row.seq: _stored(row) for row in await conn.execute(stmt)}
        out: dict[int, list[Derived]] = {}
        for key, rows in groups.items():
            for n in by_where[key]:
                rule = self.rules[n]
                assert rule.workitem.uid is not None
                derived = out.setdefault(n, [])
                for row in rows:
                    first = first_rows[row.first]
                    uid = name_based_uid(render(rule.workitem.uid, first.metadata, present(special_subjects(first))))
                    derived.append(Derived(uid, rule, first, _refs(rule, list(zip(row.series, row.classes, row.sops,
                                                                                   strict=True)))))
        return out

    async def _in_python(self, conn: AsyncConnection, studies: list[str]) -> dict[int, list[Derived]]:
        stmt = select(*_COLUMNS).where(any_of(instances.c.study_uid, studies)).order_by(instances.c.seq)
        insts = [_stored(row) for row in await conn.execute(stmt)]
        rules = [self.rules[n] for n in self.in_python]
        out: dict[int, list[Derived]] = {}
        for rule, uid, group in store_plan(rules, insts):
            refs = [(i.series_uid, i.sop_class_uid, i.sop_instance_uid) for i in group]
            out.setdefault(self.rules.index(rule), []).append(Derived(uid, rule, group[0], _refs(rule, refs)))
        return out


def _in_store_order(column):
    return func.array_agg(aggregate_order_by(column, instances.c.seq))


def _refs(rule: OnStoreRule, matching: list[Ref]) -> list[Ref]:
    """The references of the rule's input mode: every matching instance (append), the first
    one (single), none."""
    mode = rule.workitem.input_information
    if mode == "append":
        return matching
    return matching[:1] if mode == "single" else []
