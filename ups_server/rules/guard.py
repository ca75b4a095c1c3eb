"""Claim guard: a workitem made by a rule with ``performer_only`` may be claimed only by one of
its Scheduled Human Performers (requester == Human Performer Code Value)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, exists, not_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ..db.tables import rule_workitems, workitems
from ..dicom.dataset import first, items
from ..ups import tags as t
from ..ups.errors import Outcome, UPSError


def performer_codes(ds: dict[str, Any]) -> list[str]:
    return [str(first(code, t.CODE_VALUE)) for p in items(ds, t.SCHEDULED_HUMAN_PERFORMERS_SEQUENCE)
            for code in items(p, t.HUMAN_PERFORMER_CODE_SEQUENCE) if first(code, t.CODE_VALUE)]


class PerformerGuard:
    async def check(self, conn: AsyncConnection, row: dict[str, Any], requester: str | None) -> None:
        restricted = (await conn.execute(
            select(rule_workitems.c.performer_only).where(rule_workitems.c.workitem_uid == row["uid"])
        )).scalar()
        if not restricted:
            return
        codes = performer_codes(row["dataset"])
        if requester not in codes:
            raise UPSError(Outcome.NOT_AUTHORIZED,
                           f"workitem {row['uid']} is assigned to {', '.join(codes)}; "
                           f"{requester or 'an anonymous requester'} may not claim it")

    def claimable(self, requester: str | None) -> ColumnElement[bool] | None:
        restricted = exists().where(and_(rule_workitems.c.workitem_uid == workitems.c.uid,
                                         rule_workitems.c.performer_only))
        if not requester:
            return not_(restricted)
        mine = workitems.c.dataset.contains({t.SCHEDULED_HUMAN_PERFORMERS_SEQUENCE: {"Value": [
            {t.HUMAN_PERFORMER_CODE_SEQUENCE: {"Value": [{t.CODE_VALUE: {"Value": [requester]}}]}}]}})
        return or_(not_(restricted), mine)
