"""Claim guards: policies the rules plug into the UPS core (``UPSService.claim_guards``).

``PerformerGuard``: a workitem made by a rule with ``performer_only`` may be claimed only by one
of its Scheduled Human Performers (requester == Human Performer Code Value, or Long Code Value:
a subject beyond 16 characters).

``DistinctReaderGuard`` (double reading): the workitems of one read group of a study (the
``read`` pair) go to distinct readers (unless the rule's group says ``distinct_readers: false``). The claim records the reader; the partial unique index
``workitems_one_read_per_reader`` on (study, read group, reader) makes the rule hold under any
concurrency, and its violation is answered READER_HOLDS_OTHER_READ.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, case, exists, not_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ..db.tables import rule_workitems, workitems
from ..dicom.dataset import first, items
from ..ups import tags as t
from ..ups.errors import Outcome, PolicyOutcome, UPSError

_ONE_READ_PER_READER = "workitems_one_read_per_reader"  # the unique index (migration 0001)
_HOLDS_OTHER_READ = "The reader already holds another read of this study."
READER_HOLDS_OTHER_READ = PolicyOutcome("READER_HOLDS_OTHER_READ", 0x0124, _HOLDS_OTHER_READ,
                                        (409, _HOLDS_OTHER_READ))


_VALUE_TAGS = (t.CODE_VALUE, t.LONG_CODE_VALUE)


def performer_codes(ds: dict[str, Any]) -> list[str]:
    """The Code Values and Long Code Values of the Scheduled Human Performers."""
    return [str(first(code, tag)) for p in items(ds, t.SCHEDULED_HUMAN_PERFORMERS_SEQUENCE)
            for code in items(p, t.HUMAN_PERFORMER_CODE_SEQUENCE) for tag in _VALUE_TAGS if first(code, tag)]


_PERFORMER_ONLY = select(rule_workitems.c.performer_only).where(  # built once
    rule_workitems.c.workitem_uid == bindparam("performer_only_uid"))


class PerformerGuard:
    async def check(self, conn: AsyncConnection, row: dict[str, Any], requester: str | None) -> None:
        restricted = (await conn.execute(_PERFORMER_ONLY, {"performer_only_uid": row["uid"]})).scalar()
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
        mine = [workitems.c.dataset.contains({t.SCHEDULED_HUMAN_PERFORMERS_SEQUENCE: {"Value": [
            {t.HUMAN_PERFORMER_CODE_SEQUENCE: {"Value": [{tag: {"Value": [requester]}}]}}]}}) for tag in _VALUE_TAGS]
        return or_(not_(restricted), *mine)

    def claim_columns(self, requester: str | None) -> dict[str, Any]:
        return {}

    def refusal(self, exc: IntegrityError, requester: str | None) -> UPSError | None:
        return None

    async def release(self, conn: AsyncConnection, row: dict[str, Any], skipped: bool) -> dict[str, Any]:
        return {}


def membership(group: str | None, distinct_readers: bool = True) -> dict[str, Any]:
    """The columns of a workitem row that make it a member of a read group, and say whether the
    group's readers must be distinct (what ``DistinctReaderGuard`` and ``rules.access`` read): the
    rules hand them to the UPS service's creates and amends, which store them as given."""
    return {"read_group": group, "distinct_readers": distinct_readers}


_OTHER = workitems.alias("other")  # built once: an alias costs a column collection each time


def reader_holds_read(reader: str) -> ColumnElement[bool]:
    """The candidate is a member of a distinct-readers group of its study in which ``reader``
    already holds (or held) another member."""
    other = _OTHER
    return exists().where(and_(
        workitems.c.read_group.is_not(None),
        workitems.c.distinct_readers,
        other.c.study_uid == workitems.c.study_uid,
        other.c.read_group == workitems.c.read_group,
        other.c.reader == reader,
    ))


class DistinctReaderGuard:
    async def check(self, conn: AsyncConnection, row: dict[str, Any], requester: str | None) -> None:
        return None  # the claim's UPDATE records the reader (claim_columns); the unique index refuses

    def claim_columns(self, requester: str | None) -> dict[str, Any]:
        """The claim of a read-group member records ``requester`` as its reader."""
        if not requester:
            return {}
        member = and_(workitems.c.read_group.is_not(None), workitems.c.distinct_readers)
        return {"reader": case((member, requester), else_=workitems.c.reader)}

    def refusal(self, exc: IntegrityError, requester: str | None) -> UPSError | None:
        """The requester holds (or held) another member of the same group of the study: the
        unique index refused the claim (its transaction is aborted; the refusal rolls it back)."""
        if _ONE_READ_PER_READER in str(exc.orig):
            return UPSError(READER_HOLDS_OTHER_READ, f"{requester} already holds another read of this study")
        return None

    def claimable(self, requester: str | None) -> ColumnElement[bool] | None:
        """Claim-next skips the members of groups in which ``requester`` already holds one."""
        return not_(reader_holds_read(requester)) if requester else None

    async def release(self, conn: AsyncConnection, row: dict[str, Any], skipped: bool) -> dict[str, Any]:
        """A claim given back is no one's read any more."""
        return {"reader": None}
