"""The studies / series / instances index, written inside the store transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from ..db.tables import indexed_text, instances, series, studies
from ..dicom.dataset import JsonDataset, first

STUDY_TAGS = (
    "00080005",  # SpecificCharacterSet
    "00080020", "00080030", "00080050", "00080051", "00080090", "00081030",  # date, time, accession, ref. phys.
    "00100010", "00100020", "00100021", "00100024", "00100030", "00100040", "00101002",  # patient
    "0020000D", "00200010",  # StudyInstanceUID, StudyID
    "00321060", "00321064", "00401001",  # requested procedure
)
SERIES_TAGS = ("00080021", "00080031", "00080060", "0008103E", "00180015", "0020000E", "00200011", "00200060")


def pick(ds: JsonDataset, tags: tuple[str, ...]) -> JsonDataset:
    return {tag: ds[tag] for tag in tags if tag in ds}


async def lock_study(conn: AsyncConnection, study_uid: str) -> None:
    """Serialise everything done for one study (stores, rule effects) until the transaction ends."""
    await conn.execute(select(func.pg_advisory_xact_lock(func.hashtext(study_uid))))


async def add_instance(conn: AsyncConnection, *, study_uid: str, series_uid: str, sop_uid: str,
                       sop_class_uid: str, transfer_syntax: str, path: str, size: int, metadata: JsonDataset,
                       source: dict[str, Any]) -> bool:
    """Index one instance, with its study and series rows on first sight, in ONE statement.
    False when the instance was already indexed."""
    study = pg_insert(studies).values(
        study_uid=study_uid, patient_id=indexed_text(first(metadata, "00100020")),
        patient_name=indexed_text(first(metadata, "00100010")),
        accession_number=indexed_text(first(metadata, "00080050")),
        study_date=indexed_text(first(metadata, "00080020")),
        attributes=pick(metadata, STUDY_TAGS),
    ).on_conflict_do_nothing(index_elements=["study_uid"]).cte("new_study")
    serie = pg_insert(series).values(
        series_uid=series_uid, study_uid=study_uid, modality=indexed_text(first(metadata, "00080060")),
        attributes=pick(metadata, SERIES_TAGS),
    ).on_conflict_do_nothing(index_elements=["series_uid"]).cte("new_series")
    stmt = pg_insert(instances).values(
        sop_instance_uid=sop_uid, series_uid=series_uid, study_uid=study_uid, sop_class_uid=sop_class_uid,
        transfer_syntax=transfer_syntax, path=path, size=size, metadata=metadata, **source,
    ).on_conflict_do_nothing(index_elements=["sop_instance_uid"]).returning(instances.c.seq)
    return (await conn.execute(stmt.add_cte(study, serie))).first() is not None


async def delete_study(conn: AsyncConnection, study_uid: str) -> list[str] | None:
    """Delete a study's index rows (instances, series, study); the blob paths of its instances,
    or None when no such study is stored."""
    paths = (await conn.execute(delete(instances).where(instances.c.study_uid == study_uid)
                                .returning(instances.c.path))).scalars().all()
    await conn.execute(delete(series).where(series.c.study_uid == study_uid))
    gone = (await conn.execute(delete(studies).where(studies.c.study_uid == study_uid)
                               .returning(studies.c.study_uid))).first()
    return None if gone is None and not paths else list(paths)
