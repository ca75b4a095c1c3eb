"""Reading the index back: QIDO-RS searches and the instance lists WADO-RS retrieves."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from ..db.tables import instances, series, studies
from ..dicom.dataset import JsonDataset, element

# QIDO keys (keyword or tag) -> the column they match
STUDY_KEYS = {
    "StudyInstanceUID": studies.c.study_uid, "0020000D": studies.c.study_uid,
    "PatientID": studies.c.patient_id, "00100020": studies.c.patient_id,
    "AccessionNumber": studies.c.accession_number, "00080050": studies.c.accession_number,
    "StudyDate": studies.c.study_date, "00080020": studies.c.study_date,
    "PatientName": studies.c.patient_name, "00100010": studies.c.patient_name,
}
SERIES_KEYS = {"SeriesInstanceUID": series.c.series_uid, "0020000E": series.c.series_uid,
               "Modality": series.c.modality, "00080060": series.c.modality}
INSTANCE_KEYS = {"SOPInstanceUID": instances.c.sop_instance_uid, "00080018": instances.c.sop_instance_uid,
                 "SOPClassUID": instances.c.sop_class_uid, "00080016": instances.c.sop_class_uid}
_DATE_COLUMNS = {"StudyDate", "00080020"}


def match(column: Any, value: str, is_date: bool = False) -> ColumnElement[bool]:
    """DICOM matching of one key: UID list (a,b), wildcard (* ?), date range (a-b), single value."""
    if is_date and "-" in value:
        lo, hi = (v.strip() for v in value.split("-", 1))
        conds = ([column >= lo] if lo else []) + ([column <= hi] if hi else [])
        return and_(*conds)
    if "," in value:
        return column.in_([v.strip() for v in value.split(",")])
    if "*" in value or "?" in value:
        escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return column.like(escaped.replace("*", "%").replace("?", "_"))
    return column == value


async def _page(engine: AsyncEngine, stmt: Any, limit: int | None, offset: int) -> list[Any]:
    """The rows of one page of ``stmt`` (QIDO-RS ``limit`` / ``offset``)."""
    stmt = stmt.offset(offset) if limit is None else stmt.offset(offset).limit(limit)
    async with engine.connect() as conn:
        return list((await conn.execute(stmt)).all())


def filters(params: list[tuple[str, str]], keys: dict[str, Any]) -> list[ColumnElement[bool]]:
    out = []
    for key, value in params:
        if key in keys and value != "":
            out.append(match(keys[key], value, key in _DATE_COLUMNS))
    return out


async def search_studies(engine: AsyncEngine, params: list[tuple[str, str]], limit: int | None,
                         offset: int, within: Any = None) -> list[JsonDataset]:
    """``within``: a SELECT of the Study Instance UIDs the caller may read (None: all)."""
    conds = filters(params, STUDY_KEYS)
    if within is not None:
        conds.append(studies.c.study_uid.in_(within))
    modality = next((v for k, v in params if k in ("ModalitiesInStudy", "00080061", "Modality") and v), None)
    if modality:
        conds.append(studies.c.study_uid.in_(select(series.c.study_uid).where(match(series.c.modality, modality))))
    n_series = select(func.count()).where(series.c.study_uid == studies.c.study_uid).scalar_subquery()
    n_inst = select(func.count()).where(instances.c.study_uid == studies.c.study_uid).scalar_subquery()
    mods = select(func.array_agg(func.distinct(series.c.modality))).where(
        series.c.study_uid == studies.c.study_uid).scalar_subquery()
    stmt = (select(studies.c.attributes, n_series, n_inst, mods).where(*conds)
            .order_by(studies.c.created_at, studies.c.study_uid))
    rows = await _page(engine, stmt, limit, offset)
    out = []
    for attrs, ns, ni, ms in rows:
        ds = dict(attrs)
        ds["00080061"] = element("CS", *[m for m in (ms or []) if m])
        ds["00201206"] = element("IS", ns)
        ds["00201208"] = element("IS", ni)
        out.append(ds)
    return out


async def search_series(engine: AsyncEngine, study_uid: str, params: list[tuple[str, str]], limit: int | None,
                        offset: int) -> list[JsonDataset]:
    n_inst = select(func.count()).where(instances.c.series_uid == series.c.series_uid).scalar_subquery()
    stmt = (select(series.c.attributes, n_inst).where(series.c.study_uid == study_uid,
                                                      *filters(params, SERIES_KEYS))
            .order_by(series.c.created_at, series.c.series_uid))
    rows = await _page(engine, stmt, limit, offset)
    out = []
    for attrs, ni in rows:
        ds = dict(attrs)
        ds["0020000D"] = element("UI", study_uid)
        ds["00201209"] = element("IS", ni)
        out.append(ds)
    return out


async def search_instances(engine: AsyncEngine, study_uid: str, series_uid: str | None,
                           params: list[tuple[str, str]], limit: int | None, offset: int) -> list[JsonDataset]:
    conds = [instances.c.study_uid == study_uid, *filters(params, INSTANCE_KEYS)]
    if series_uid:
        conds.append(instances.c.series_uid == series_uid)
    stmt = (select(instances.c.study_uid, instances.c.series_uid, instances.c.sop_class_uid,
                   instances.c.sop_instance_uid, instances.c.metadata["00200013"].label("number"))
            .where(*conds).order_by(instances.c.seq))
    rows = await _page(engine, stmt, limit, offset)
    out = []
    for st, se, cls, sop, number in rows:
        ds = {"00080016": element("UI", cls), "00080018": element("UI", sop), "0020000D": element("UI", st),
              "0020000E": element("UI", se)}
        if number:
            ds["00200013"] = number
        out.append(ds)
    return out


async def instance_rows(engine: AsyncEngine, study_uid: str, series_uid: str | None = None,
                        sop_uid: str | None = None, with_metadata: bool = False) -> list[dict[str, Any]]:
    """The stored instances of a study / series / one instance, in store order."""
    cols = [instances.c.study_uid, instances.c.series_uid, instances.c.sop_instance_uid, instances.c.sop_class_uid,
            instances.c.transfer_syntax, instances.c.path, instances.c.size, instances.c.source_ae,
            instances.c.source_host, instances.c.receiving_ae]
    if with_metadata:
        cols.append(instances.c.metadata)
    conds = [instances.c.study_uid == study_uid]
    if series_uid:
        conds.append(instances.c.series_uid == series_uid)
    if sop_uid:
        conds.append(instances.c.sop_instance_uid == sop_uid)
    async with engine.connect() as conn:
        rows = (await conn.execute(select(*cols).where(*conds).order_by(instances.c.seq))).mappings().all()
    return [dict(r) for r in rows]


async def study_uids(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        return list((await conn.execute(select(studies.c.study_uid).order_by(studies.c.created_at))).scalars())


__all__ = ["instance_rows", "search_instances", "search_series", "search_studies", "study_uids"]
