"""The studies / series / instances index, written inside the store transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, delete, func, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import Text

from ..db.tables import indexed_text, instances, series, studies
from ..dicom import jsontext
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


@dataclass
class NewInstance:
    """An instance to index: its UIDs, where its object is (``path``: the blob key), its DICOM JSON."""

    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class_uid: str
    transfer_syntax: str
    path: str
    size: int
    metadata: JsonDataset
    source_ae: str | None
    source_host: str | None
    receiving_ae: str | None

    def row(self, n: int) -> dict[str, Any]:
        md = self.metadata
        return {
            "n": n, "sop": self.sop_uid, "series": self.series_uid, "study": self.study_uid,
            "sop_class": self.sop_class_uid, "ts": self.transfer_syntax, "path": self.path, "size": self.size,
            "metadata": md, "source_ae": self.source_ae, "source_host": self.source_host,
            "receiving_ae": self.receiving_ae, "patient_id": indexed_text(first(md, t.PATIENT_ID)),
            "patient_name": indexed_text(first(md, t.PATIENT_NAME)), "accession": indexed_text(first(md, t.ACCESSION_NUMBER)),
            "study_date": indexed_text(first(md, t.STUDY_DATE)), "study_attrs": pick(md, STUDY_TAGS),
            "modality": indexed_text(first(md, t.MODALITY)), "series_attrs": pick(md, SERIES_TAGS),
        }


# Many instances, with their studies and series on first sight, in ONE statement (the rows travel
# as one JSON array: one parameter, one plan, however many instances), which first takes the
# studies' locks (``lock_studies``; every row waits for them) and ends by settling the upload records
# of the objects it indexed (``ingest/uploads.py``). Within the batch the first instance of a study /
# series / SOP Instance UID wins; instances are inserted in batch order (their ``seq``: store order).
# The result names the objects (paths) that were indexed, and whether each one's record was there.
_ADD_INSTANCES = text("""
WITH locked AS (
    SELECT count(*) AS studies FROM unnest(CAST(:studies AS TEXT[])) AS s, pg_advisory_xact_lock(hashtext(s))
), r AS (
    SELECT r.* FROM locked, jsonb_to_recordset(CAST(CAST(:rows AS TEXT) AS JSONB)) AS r(
        n int, sop text, series text, study text, sop_class text, ts text, path text, size bigint,
        metadata jsonb, source_ae text, source_host text, receiving_ae text, patient_id text,
        patient_name text, accession text, study_date text, study_attrs jsonb, modality text, series_attrs jsonb)
), new_study AS (
    INSERT INTO studies (study_uid, patient_id, patient_name, accession_number, study_date, attributes)
    SELECT DISTINCT ON (study) study, patient_id, patient_name, accession, study_date, study_attrs
    FROM r ORDER BY study, n
    ON CONFLICT (study_uid) DO NOTHING
), new_series AS (
    INSERT INTO series (series_uid, study_uid, modality, attributes)
    SELECT DISTINCT ON (series) series, study, modality, series_attrs FROM r ORDER BY series, n
    ON CONFLICT (series_uid) DO NOTHING
), added AS (
    INSERT INTO instances (sop_instance_uid, series_uid, study_uid, sop_class_uid, transfer_syntax, path, size,
                           metadata, source_ae, source_host, receiving_ae)
    SELECT sop, series, study, sop_class, ts, path, size, metadata, source_ae, source_host, receiving_ae
    FROM (SELECT DISTINCT ON (sop) * FROM r ORDER BY sop, n) AS first_of_each ORDER BY n
    ON CONFLICT (sop_instance_uid) DO NOTHING
    RETURNING path
), settled AS (
    DELETE FROM blob_uploads WHERE key IN (SELECT path FROM added) RETURNING key
)
SELECT added.path, settled.key IS NOT NULL AS settled FROM added LEFT JOIN settled ON settled.key = added.path
""").bindparams(bindparam("rows", type_=Text), bindparam("studies", type_=ARRAY(Text)))


async def add_instances(conn: AsyncConnection, new: list[NewInstance]) -> dict[str, bool]:
    """Under the locks of their studies (``lock_studies``), index ``new`` (with their study and
    series rows on first sight) and settle the upload records of their objects, in ONE statement.
    The paths of those indexed (an instance already indexed, or twice in ``new``, is not indexed
    again), each with whether its upload record was there to settle (False: housekeeping removed
    the object as an orphan before this transaction got the lock)."""
    if not new:
        return {}
    rows = jsontext.dumps_text([inst.row(n) for n, inst in enumerate(new)])
    result = await conn.execute(_ADD_INSTANCES, {"rows": rows,
                                                 "studies": sorted({inst.study_uid for inst in new})})
    return dict(result.all())


_LOCK_STUDIES = text("SELECT pg_advisory_xact_lock(hashtext(s)) FROM unnest(CAST(:studies AS TEXT[])) AS s"
                     ).bindparams(bindparam("studies", type_=ARRAY(Text)))


async def lock_studies(conn: AsyncConnection, study_uids: list[str]) -> None:
    """``lock_study`` for each of ``study_uids`` in one round trip, in UID order (the array's order:
    two transactions never wait on each other in a cycle)."""
    await conn.execute(_LOCK_STUDIES, {"studies": sorted(set(study_uids))})


async def delete_study(conn: AsyncConnection, study_uid: str) -> list[str] | None:
    """Delete a study's index rows (instances, series, study); the blob paths of its instances,
    or None when no such study is stored."""
    paths = (await conn.execute(delete(instances).where(instances.c.study_uid == study_uid)
                                .returning(instances.c.path))).scalars().all()
    await conn.execute(delete(series).where(series.c.study_uid == study_uid))
    gone = (await conn.execute(delete(studies).where(studies.c.study_uid == study_uid)
                               .returning(studies.c.study_uid))).first()
    return None if gone is None and not paths else list(paths)
