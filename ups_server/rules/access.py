"""Who may see and act on which workitem (issue 10): roles, claim roles, blind reading, worklists.

A policy over the principal of a request; the UPS service asks it before it acts and adds its
SQL to every read. Admins (and the open mode's principal, which holds every role) are never
restricted, except by a worklists claim. For the others:

- ``ingest`` alone: no workitem at all (refused: Not Authorized).
- Claim: the group's ``claim_role`` (rule files; ``reader`` for workitems no rule made), where an
  ``arbitrator`` also holds the ``reader`` role's claims.
- The reader (the claimant, the reader of the distinct-readers rule, the performer of
  ``performer_only``) is the authenticated subject; a station identified by its AE title alone
  (``--ae-roles``) is its AE title; in open mode it is the requester the client names.
- Update, Change State, Request Cancellation and Skip of a claimed workitem: its claimant only; of a
  SCHEDULED one (a rewrite, a cancel): admins only. Create and Reassign: admins only.
- Blind reading: a workitem is visible when it is the principal's own claim, or SCHEDULED and
  claimable by the principal, or final with no read of its study and group still open (the reads
  are all final). Arbitrators see every workitem. Anything else is "no such workitem".
- Worklists: a principal with a worklists claim sees and claims only workitems whose Worklist
  Label is one of them.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, false, literal, not_, or_, select, true
from sqlalchemy.ext.asyncio import AsyncEngine

from ..auth.principal import ADMIN, ARBITRATOR, OPEN, READER, Principal
from ..db.tables import rule_workitems, workitems
from ..ups.attributes import CANCELED, COMPLETED, IN_PROGRESS, SCHEDULED
from ..ups.errors import Outcome, UPSError
from ..ups.policy import Act
from .performer import name_performer

_SIBLING = workitems.alias("sibling")


def claim_roles(principal: Principal) -> tuple[str, ...]:
    """The claim_role values whose workitems ``principal`` may claim."""
    if principal.has(ADMIN):
        return (READER, ARBITRATOR, ADMIN)
    if ARBITRATOR in principal.roles:
        return (READER, ARBITRATOR)
    if READER in principal.roles:
        return (READER,)
    return ()


def identity(principal: Principal) -> str | None:
    """Who the principal is as a reader: its subject once authenticated, else its AE title
    (``--ae-roles``); None in open mode (the requester names the reader there)."""
    return principal.subject if principal.authenticated else principal.ae_title


def reader(principal: Principal, requester: str | None) -> str | None:
    """The reader of a request: the principal's identity, else (open mode) the requester."""
    return identity(principal) or requester


def unrestricted(principal: Principal) -> bool:
    return principal.has(ADMIN) and principal.worklists is None


def require_workitem_role(principal: Principal) -> None:
    """Any workitem operation needs reader, arbitrator or admin (ingest alone: none)."""
    if not principal.has(READER, ARBITRATOR):
        raise UPSError(Outcome.NOT_AUTHORIZED, f"{_who(principal)} has no reader, arbitrator or admin role")


def require_admin(principal: Principal, what: str) -> None:
    if not principal.has(ADMIN):
        raise UPSError(Outcome.NOT_AUTHORIZED, f"{what} is for the admin role; {_who(principal)} is not an admin")


def _who(principal: Principal) -> str:
    return principal.display_name or principal.subject or principal.ae_title or "the requester"


def _in_worklists(principal: Principal) -> ColumnElement[bool]:
    if principal.worklists is None:
        return true()
    return workitems.c.worklist_label.in_(sorted(principal.worklists))


def _claim_role_ok(principal: Principal) -> ColumnElement[bool]:
    roles = claim_roles(principal)
    if not roles:
        return false()
    return not_(exists().where(and_(rule_workitems.c.workitem_uid == workitems.c.uid,
                                    rule_workitems.c.claim_role.not_in(roles))))


def visible(principal: Principal) -> ColumnElement[bool] | None:
    """SQL over ``workitems``: what ``principal`` may see (None: everything)."""
    if unrestricted(principal):
        return None
    if not principal.has(READER, ARBITRATOR):
        return false()
    scope = _in_worklists(principal)
    if principal.has(ARBITRATOR):
        return scope
    me = identity(principal)
    own = workitems.c.claimant == me if me else false()
    schedulable = and_(workitems.c.state == SCHEDULED, _claim_role_ok(principal))
    all_reads_final = and_(
        workitems.c.state.in_((COMPLETED, CANCELED)),
        not_(exists().where(and_(workitems.c.read_group.is_not(None),
                                 _SIBLING.c.study_uid == workitems.c.study_uid,
                                 _SIBLING.c.read_group == workitems.c.read_group,
                                 _SIBLING.c.state.in_((SCHEDULED, IN_PROGRESS))))),
    )
    return and_(scope, or_(own, schedulable, all_reads_final))


def claimable(principal: Principal) -> ColumnElement[bool] | None:
    """SQL over ``workitems``: the SCHEDULED ones ``principal`` may claim (None: no restriction);
    it depends on ``claim_scope(principal)`` only."""
    if unrestricted(principal):
        return None
    return and_(_in_worklists(principal), _claim_role_ok(principal))


def claim_scope(principal: Principal) -> tuple[bool, tuple[str, ...], frozenset[str] | None]:
    """All that ``claimable`` reads of the principal: admin without worklists, the claim roles,
    the worklists."""
    return unrestricted(principal), claim_roles(principal), principal.worklists


async def check_claim(conn: Any, principal: Principal, row: dict[str, Any]) -> None:
    """Before SCHEDULED -> IN PROGRESS: the worklist and the group's claim role."""
    require_workitem_role(principal)
    if unrestricted(principal):
        return
    if not principal.sees_worklist(row.get("worklist_label")):
        raise UPSError(Outcome.NO_SUCH_UPS, f"Workitem {row['uid']} does not exist")
    role = (await conn.execute(select(rule_workitems.c.claim_role)
                               .where(rule_workitems.c.workitem_uid == row["uid"]))).scalar() or READER
    if role not in claim_roles(principal):
        raise UPSError(Outcome.NOT_AUTHORIZED, f"workitem {row['uid']} needs the {role} role to be claimed; "
                                               f"{_who(principal)} does not have it")


def check_claimant(principal: Principal, row: dict[str, Any], what: str, requester: str | None = None) -> None:
    """Update / Change State / Request Cancellation / Skip: only the claimant acts on a claim
    (admins on anything); a SCHEDULED workitem is changed by admins only (a rewrite before the
    claim, a cancel)."""
    require_workitem_role(principal)
    if principal.has(ADMIN):
        return
    if row["state"] == SCHEDULED:
        raise UPSError(Outcome.NOT_AUTHORIZED, f"{what} of a SCHEDULED workitem is for the admin role")
    if row.get("claimant") != reader(principal, requester):
        raise UPSError(Outcome.NOT_AUTHORIZED, f"workitem {row['uid']} is claimed by another reader; only its "
                                               f"claimant may {what.lower()} it")


def readable_studies(principal: Principal) -> Select | None:
    """The Study Instance UIDs ``principal`` may read (QIDO-RS, WADO-RS, Q/R): those of the
    workitems it may see (None: every study; ingest alone: none)."""
    where = visible(principal)
    if where is None:
        return None
    return select(workitems.c.study_uid).where(where, workitems.c.study_uid.is_not(None))


async def may_read_study(engine: AsyncEngine, principal: Principal, study: str) -> bool:
    within = readable_studies(principal)
    if within is None:
        return True
    async with engine.connect() as conn:
        return (await conn.execute(select(literal(True)).where(literal(study).in_(within)))).first() is not None


async def hidden(conn: Any, where: ColumnElement[bool] | None, uids: Collection[str | None]) -> set[str]:
    """The workitem UIDs of ``uids`` outside ``where`` (``visible``): events of them are not for
    the subscriber's eyes (WebSocket and DIMSE delivery). None (no workitem: SCP status) is never hidden."""
    wanted = {uid for uid in uids if uid}
    if where is None or not wanted:
        return set()
    seen = set((await conn.execute(select(workitems.c.uid).where(workitems.c.uid.in_(wanted), where))).scalars())
    return wanted - seen


_ADMIN_ONLY = frozenset({Act.CREATE, Act.REASSIGN})


class AccessPolicy:
    """This module's policy as the UPS core's ``AccessPolicy`` (``ups/policy.py``); a principal
    of None (an in-process caller: the server itself) is not restricted."""

    def reader(self, principal: Principal | None, requester: str | None) -> str | None:
        return reader(principal or OPEN, requester)

    def allow(self, principal: Principal | None, act: Act) -> None:
        if principal is None:
            return
        if act in _ADMIN_ONLY:
            require_admin(principal, act.value)
        else:
            require_workitem_role(principal)

    async def check(self, conn: Any, principal: Principal | None, requester: str | None, row: dict[str, Any],
                    act: Act) -> None:
        if principal is None:
            return
        if act is Act.CLAIM:
            await check_claim(conn, principal, row)
        else:
            check_claimant(principal, row, act.value, requester)

    def visible(self, principal: Principal | None) -> ColumnElement[bool] | None:
        return None if principal is None else visible(principal)

    def claimable(self, principal: Principal | None) -> ColumnElement[bool] | None:
        return None if principal is None else claimable(principal)

    def claim_scope(self, principal: Principal | None) -> Hashable:
        return None if principal is None else claim_scope(principal)

    def performed(self, principal: Principal | None, ds: dict[str, Any]) -> None:
        if principal is not None and principal.authenticated and principal.subject:
            name_performer(ds, principal.subject, principal.display_name)
