"""Who may manage a subscriber AE title and read its events (issue 10).

Open mode and admins: anyone, any AE. A principal authenticated by a token: the AE titles it
owns; the first such principal to subscribe an AE title (or open its WebSocket) owns it. A DIMSE
association without a user identity: its own calling AE title only.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine

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
        await conn.execute(pg_insert(subscriber_owners).values(aet=aet, subject=principal.subject)
                           .on_conflict_do_nothing(index_elements=["aet"]))
        owner = (await conn.execute(select(subscriber_owners.c.subject)
                                    .where(subscriber_owners.c.aet == aet))).scalar()
    if owner != principal.subject:
        raise UPSError(Outcome.NOT_AUTHORIZED, f"the subscriber {aet} belongs to another user; "
                                               "only it and admins manage its subscriptions")
