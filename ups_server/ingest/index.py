"""The studies / series / instances index, written inside the store transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from ..db.tables import indexed_text, instances, series, studies
from ..dicom import tags as t
from ..dicom.dataset import JsonDataset, first

STUDY_TAGS = (
    t.SPECIFIC_CHARACTER_SET,
    t.STUDY_DATE, t.STUDY_TIME, t.ACCESSION_NUMBER, t.ISSUER_OF_ACCESSION_NUMBER_SEQUENCE,
    t.REFERRING_PHYSICIAN_NAME, t.STUDY_DESCRIPTION,
    t.PATIENT_NAME, t.PATIENT_ID, t.ISSUER_OF_PATIENT_ID, t.ISSUER_OF_PATIENT_ID_QUALIFIERS_SEQUENCE,
    t.PATIENT_BIRTH_DATE, t.PATIENT_SEX, t.OTHER_PATIENT_IDS_SEQUENCE,
    t.STUDY_INSTANCE_UID, t.STUDY_ID,
    t.REQUESTED_PROCEDURE_DESCRIPTION, t.REQUESTED_PROCEDURE_CODE_SEQUENCE, t.REQUESTED_PROCEDURE_ID,
)
SERIES_TAGS = (t.SERIES_DATE, t.SERIES_TIME, t.MODALITY, t.SERIES_DESCRIPTION, t.BODY_PART_EXAMINED,
               t.SERIES_INSTANCE_UID, t.SERIES_NUMBER, t.LATERALITY)


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
        study_uid=study_uid, patient_id=indexed_text(first(metadata, t.PATIENT_ID)),
        patient_name=indexed_text(first(metadata, t.PATIENT_NAME)),
        accession_number=indexed_text(first(metadata, t.ACCESSION_NUMBER)),
        study_date=indexed_text(first(metadata, t.STUDY_DATE)),
        attributes=pick(metadata, STUDY_TAGS),
    ).on_conflict_do_nothing(index_elements=["study_uid"]).cte("new_study")
    serie = pg_insert(series).values(
        series_uid=series_uid, study_uid=study_uid, modality=indexed_text(first(metadata, t.MODALITY)),
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
