"""Writing audit rows (see the package docstring)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..auth.principal import Principal
from ..db.tables import audit_events

# Event Outcome Indicator (PS3.15 A.5.3 / RFC 3881)
SUCCESS, MINOR_FAILURE, SERIOUS_FAILURE, MAJOR_FAILURE = 0, 4, 8, 12


@dataclass(frozen=True)
class AuditEvent:
    """A PS3.15 A.5 Audit Event ID (DCM code, meaning) with its Event Action Code."""

    code: str
    meaning: str
    action: str  # C create, R read, U update, D delete, E execute


USER_AUTHENTICATION = AuditEvent("110114", "User Authentication", "E")
PROCEDURE_RECORD = AuditEvent("110111", "Procedure Record", "U")  # a workitem created / changed
INSTANCES_TRANSFERRED = AuditEvent("110104", "DICOM Instances Transferred", "C")  # stored
INSTANCES_ACCESSED = AuditEvent("110103", "DICOM Instances Accessed", "R")  # a study read
QUERY = AuditEvent("110112", "Query", "E")
AUDIT_LOG_USED = AuditEvent("110101", "Audit Log Used", "R")


@dataclass(frozen=True)
class Actor:
    """Who acted: the authenticated subject (if any), the AE title (if any) and the address."""

    subject: str | None = None
    display_name: str | None = None
    ae_title: str | None = None
    address: str | None = None

    @classmethod
    def of(cls, principal: Principal | None, address: str | None = None, ae_title: str | None = None) -> Actor:
        if principal is None:
            return cls(ae_title=ae_title, address=address)
        return cls(principal.subject, principal.display_name, ae_title or principal.ae_title,
                   address or principal.address)


SYSTEM = Actor(display_name="ups-server")  # the server itself (rules)


def values(event: AuditEvent, actor: Actor, what: str, *, outcome: int = SUCCESS, workitem: str | None = None,
           study: str | None = None, detail: str | None = None, action: str | None = None) -> dict:
    """One audit_events row."""
    return {"event_id": event.code, "event": event.meaning, "action": action or event.action, "what": what,
            "outcome": outcome, "subject": actor.subject, "display_name": actor.display_name,
            "ae_title": actor.ae_title, "address": actor.address, "workitem_uid": workitem, "study_uid": study,
            "detail": detail[:4000] if detail else None}


async def record(conn: AsyncConnection, event: AuditEvent, actor: Actor, what: str, **kwargs) -> None:
    await conn.execute(insert(audit_events).values(**values(event, actor, what, **kwargs)))


async def record_many(conn: AsyncConnection, rows: list[dict]) -> None:
    """Many rows (``values(...)``) in one statement, on the caller's connection."""
    if rows:
        await conn.execute(insert(audit_events), rows)


async def record_now(engine: AsyncEngine, event: AuditEvent, actor: Actor, what: str, **kwargs) -> None:
    """A row in its own transaction (for what changes nothing: failures, reads)."""
    async with engine.begin() as conn:
        await record(conn, event, actor, what, **kwargs)
