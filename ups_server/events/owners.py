"""Who may manage a subscriber AE title and read its events (issue 10).

Open mode and admins: anyone, any AE. A principal authenticated by a token: the AE titles it
owns; the first such principal to subscribe an AE title (or open its WebSocket) owns it. A DIMSE
association without a user identity: its own calling AE title only.

The principal an AE title's DIMSE events are filtered for (``subscriber_principal``): its owner
with the roles and worklists of the owner's last subscription change, else the roles
``--ae-roles`` gives the AE title.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..auth.principal import ADMIN, Principal
from ..db.tables import subscriber_owners
from ..ups.errors import Outcome, UPSError


async def check_owner(engine: AsyncEngine, aet: str, principal: Principal) -> None:
    """UPSError NOT_AUTHORIZED (403 / 0x0124) unless ``principal`` may manage ``aet``."""
    if principal.has(ADMIN):
        return
    if not principal.authenticated:
        if principal.ae_title is not None and principal.ae_title != aet:
            raise UPSError(Outcome.NOT_AUTHORIZED, f"{principal.ae_title} may not manage the subscriptions of {aet}")
        return
    async with engine.begin() as conn:
        scope = {"roles": sorted(principal.roles),
                 "worklists": None if principal.worklists is None else sorted(principal.worklists)}
        stmt = pg_insert(subscriber_owners).values(aet=aet, subject=principal.subject, **scope)
        await conn.execute(stmt.on_conflict_do_update(index_elements=["aet"], set_=scope,
                                                      where=subscriber_owners.c.subject == principal.subject))
        owner = (await conn.execute(select(subscriber_owners.c.subject)
                                    .where(subscriber_owners.c.aet == aet))).scalar()
    if owner != principal.subject:
        raise UPSError(Outcome.NOT_AUTHORIZED, f"the subscriber {aet} belongs to another user; "
                                               "only it and admins manage its subscriptions")


async def subscriber_principal(conn: AsyncConnection, aet: str, ae_roles: Mapping[str, Iterable[str]]) -> Principal:
    """Whom ``aet``'s events are for under --auth oidc: its owner as last seen, else the AE title
    with its ``--ae-roles`` (none: it sees no workitem)."""
    row = (await conn.execute(select(subscriber_owners).where(subscriber_owners.c.aet == aet))).first()
    if row is None:
        return Principal.for_ae(aet, ae_roles.get(aet, ()))
    return Principal(subject=row.subject, roles=frozenset(row.roles), authenticated=True,
                     worklists=None if row.worklists is None else frozenset(row.worklists))
