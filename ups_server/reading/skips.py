"""Skip (an extension): a reader gives a claimed read back to the pool; claim-next does not
offer that reader the workitem, nor another read of its study, for ``hold_seconds``. A claim of
the row by name is still allowed."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, insert, not_, or_, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ..db.tables import skipped_reads, workitems
from ..ups.errors import UPSError


class SkipGuard:
    """A ClaimGuard (ups.service) that records skips and keeps recently skipped studies out of their
    reader's claim-next."""

    def __init__(self, hold_seconds: int):
        self.hold_seconds = hold_seconds

    async def check(self, conn: AsyncConnection, row: dict[str, Any], reader: str | None) -> None:
        return None  # the reader may still claim it by name

    def claim_columns(self, reader: str | None) -> dict[str, Any]:
        return {}

    def refusal(self, exc: IntegrityError, reader: str | None) -> UPSError | None:
        return None

    def claimable(self, reader: str | None) -> ColumnElement[bool] | None:
        if not reader or self.hold_seconds <= 0:
            return None
        skipped = skipped_reads.c
        return not_(exists().where(and_(
            skipped.reader == reader,
            skipped.skipped_at > func.now() - text(f"interval '{int(self.hold_seconds)} seconds'"),
            or_(skipped.workitem_uid == workitems.c.uid,
                and_(skipped.study_uid.is_not(None), skipped.study_uid == workitems.c.study_uid)),
        )))

    async def release(self, conn: AsyncConnection, row: dict[str, Any], skipped: bool) -> dict[str, Any]:
        """A skip is recorded for its reader (the claimant: the person once authenticated), so
        claim-next holds the study back."""
        reader = row["claimant"]
        if skipped and reader:
            await conn.execute(insert(skipped_reads).values(workitem_uid=row["uid"], reader=reader,
                                                           study_uid=row["study_uid"]))
        return {}
