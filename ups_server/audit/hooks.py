"""Audit rows written inside the transactions of the services (stored instances, rule effects)."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from sqlalchemy import Boolean, bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ..db.tables import audit_events
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
    from ..ups.service import Change


APPENDED = "input references appended"
CREATED = "workitem created"


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
                 detail=CREATED if created else APPENDED)


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


_STATE_WHAT = {("SCHEDULED", "IN PROGRESS"): "claim", ("IN PROGRESS", "COMPLETED"): "complete",
               ("IN PROGRESS", "CANCELED"): "cancel", ("SCHEDULED", "CANCELED"): "cancel",
               ("IN PROGRESS", "SCHEDULED"): "release"}


async def workitem_changed(conn: AsyncConnection, change: Change) -> None:
    """UPSService listener: a change a principal asked for (the rules' own are rule effects)."""
    if change.principal is None:
        return
    if change.kind == "state":
        what, action = _STATE_WHAT.get((change.previous_state or "", change.state), f"state {change.state}"), "U"
        if change.previous_state == "SCHEDULED" and change.state == "IN PROGRESS" and change.info is not None:
            return  # the first half of an SCP-side cancel of a SCHEDULED workitem: one row, for CANCELED
    else:
        what, action = {"created": ("create", "C"), "updated": ("update", "U"),
                        "cancel-requested": ("cancel request", "U")}[change.kind]
    actor = Actor.of(change.principal, ae_title=change.requester)
    await record(conn, PROCEDURE_RECORD, actor, what, workitem=change.uid, study=change.row.get("study_uid"),
                 action=action)


_CLAIM = "claim_audit_"  # the bind parameters of claim_sql: one per audit_events column of ``values``
_CLAIM_AUDITED = _CLAIM + "row"  # false: no row (a change the server makes itself)


def claim_sql(claimed: Any) -> list[Any]:
    """``workitem_changed``'s row for a claim by claim-next, as a CTE of its statement over the claimed
    row (ClaimHook): the workitem and study from that row, the rest the values of ``claim_params``."""
    columns = {name: bindparam(_CLAIM + name, type_=audit_events.c[name].type)
               for name in values(PROCEDURE_RECORD, SYSTEM, "") if name not in ("workitem_uid", "study_uid")}
    columns |= {"workitem_uid": claimed.c.uid, "study_uid": claimed.c.study_uid}
    rows = select(*columns.values()).select_from(claimed).where(bindparam(_CLAIM_AUDITED, type_=Boolean))
    return [insert(audit_events).from_select(list(columns), rows).returning(audit_events.c.id).cte("claim_audit")]


def claim_params(principal: Any, requester: str | None) -> dict[str, Any]:
    """The values of ``claim_sql``'s parameters for a claim ``principal`` asks for (as ``requester``)."""
    row = {} if principal is None else values(PROCEDURE_RECORD, Actor.of(principal, ae_title=requester),
                                              _STATE_WHAT[("SCHEDULED", "IN PROGRESS")], action="U")
    return {_CLAIM_AUDITED: principal is not None,
            **{_CLAIM + name: row.get(name) for name in values(PROCEDURE_RECORD, SYSTEM, "")}}
