"""Re-run the on_store rules over stored studies (``ups-server rules apply``): idempotent,
because workitem UIDs are name-based and references already present are not appended again."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from ..ingest import catalog, index
from ..ingest.model import StoredInstance
from .engine import Effects, RuleEngine


@dataclass
class StudyReport:
    study_uid: str
    instances: int
    effects: Effects


async def replay_study(db: AsyncEngine, rules: RuleEngine, study_uid: str, dry_run: bool = False) -> StudyReport:
    """Evaluate every on_store rule for every instance of the study, in store order, in one
    transaction under the study's lock (rolled back with ``dry_run``)."""
    effects = Effects()
    rows = await catalog.instance_rows(db, study_uid, with_metadata=True)
    async with db.connect() as conn:
        trans = await conn.begin()
        try:
            await index.lock_study(conn, study_uid)
            insts = [StoredInstance(row["study_uid"], row["series_uid"], row["sop_instance_uid"],
                                    row["sop_class_uid"], row["metadata"], row["source_ae"], row["source_host"],
                                    row["receiving_ae"]) for row in rows]
            await rules.on_store(conn, insts, effects)
        except BaseException:
            await trans.rollback()
            raise
        if dry_run:
            await trans.rollback()
        else:
            await trans.commit()
    return StudyReport(study_uid, len(rows), effects)
