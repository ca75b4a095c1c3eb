"""Audit rows written inside the transactions of the services (stored instances, rule effects)."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncConnection

from .record import (
    INSTANCES_ACCESSED,
    INSTANCES_TRANSFERRED,
    PROCEDURE_RECORD,
    SYSTEM,
    Actor,
    record,
    record_many,
    values,
)

if TYPE_CHECKING:
    from ..ingest.model import StoredInstance


APPENDED = "input references appended"


async def stored(conn: AsyncConnection, insts: list[StoredInstance]) -> list[int]:
    """IngestService on_store hook: one row per study (and sender) of the store transaction, in one
    statement."""
    per_study = Counter((i.study_uid, i.source_ae, i.source_host) for i in insts)
    await record_many(conn, [values(INSTANCES_TRANSFERRED, Actor(ae_title=ae, address=host), "store", study=study,
                                    detail=f"{count} instance(s) stored")
                             for (study, ae, host), count in per_study.items()])
    return [0] * len(insts)


async def rule_effect(conn: AsyncConnection, rule: str, created: bool, workitem: str, study: str | None) -> None:
    """A rule created a workitem or appended references to one (the server acts: SYSTEM)."""
    await record(conn, PROCEDURE_RECORD, SYSTEM, f"rule {rule}", workitem=workitem, study=study,
                 action="C" if created else "U",
                 detail="workitem created" if created else APPENDED)


async def rule_effects(conn: AsyncConnection, effects: list[tuple[str, str, str, str | None, str]]) -> None:
    """What ``rules apply`` changed, one row each, one statement: (rule, action C / U, workitem,
    study, detail)."""
    await record_many(conn, [values(PROCEDURE_RECORD, SYSTEM, f"rule {rule}", workitem=workitem, study=study,
                                    action=action, detail=detail)
                             for rule, action, workitem, study, detail in effects])


async def study_deleted(conn: AsyncConnection, actor: Actor, study: str, instances: int) -> None:
    """A study's instances deleted (DICOM Instances Accessed, action D)."""
    await record(conn, INSTANCES_ACCESSED, actor, "delete study", study=study, action="D",
                 detail=f"{instances} instance(s) deleted")
