"""Reading the index back: QIDO-RS searches (and the Q/R SCP's) and the instance lists WADO-RS
retrieves. A search is a ``Query`` (``dicom/query.py``: the parser of UPS search and C-FIND)
compiled by the one matcher (``dicom/matching.py``) against the level's indexed columns and its
JSONB copy of the level's attributes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, select, true
from sqlalchemy.ext.asyncio import AsyncEngine

from ..db.tables import instances, series, studies
from ..dicom import tags as t
from ..dicom.dataset import JsonDataset, element
from ..dicom.matching import Target, key_clause
from ..dicom.query import Match, Query
from .index import SERIES_TAGS, STUDY_TAGS


@dataclass(frozen=True)
class Level:
    """A QIDO-RS level: what its keys match on, and which keys it supports (None: every key)."""

    target: Target
    supported: frozenset[str] | None


STUDY = Level(Target({
    t.STUDY_INSTANCE_UID: (studies.c.study_uid, "text"), t.PATIENT_ID: (studies.c.patient_id, "text"),
    t.ACCESSION_NUMBER: (studies.c.accession_number, "text"), t.STUDY_DATE: (studies.c.study_date, "da"),
    t.PATIENT_NAME: (studies.c.patient_name, "pn"),
}, studies.c.attributes), frozenset({*STUDY_TAGS, t.MODALITY, t.MODALITIES_IN_STUDY}))
SERIES = Level(Target({t.SERIES_INSTANCE_UID: (series.c.series_uid, "text"),
                       t.MODALITY: (series.c.modality, "text")}, series.c.attributes), frozenset(SERIES_TAGS))
INSTANCE = Level(Target({t.SOP_INSTANCE_UID: (instances.c.sop_instance_uid, "text"),
                         t.SOP_CLASS_UID: (instances.c.sop_class_uid, "text")}, instances.c.metadata), None)


def unsupported(query: Query, level: Level) -> list[str]:
    """The matching keys ``level`` does not support: ignored (QIDO-RS names them in a Warning)."""
    return [m.tag for m in query.keys if level.supported is not None and m.tag not in level.supported]


def _where(query: Query, level: Level) -> Any:
    keys = [m for m in query.keys if not m.is_universal and m.tag not in unsupported(query, level)]
    if level is STUDY:  # Modalities in Study (and Modality, as clients send it): the study's series
        modalities = [m for m in keys if m.tag in (t.MODALITY, t.MODALITIES_IN_STUDY)]
        keys = [m for m in keys if m not in modalities]
        conds = [studies.c.study_uid.in_(select(series.c.study_uid).where(
            key_clause(Match(t.MODALITY, "CS", m.values), SERIES.target))) for m in modalities]
        return and_(true(), *conds, *(key_clause(m, level.target) for m in keys))
    return and_(true(), *(key_clause(m, level.target) for m in keys))


async def _page(engine: AsyncEngine, stmt: Any, limit: int | None, offset: int) -> list[Any]:
    """The rows of one page of ``stmt`` (QIDO-RS ``limit`` / ``offset``)."""
    stmt = stmt.offset(offset) if limit is None else stmt.offset(offset).limit(limit)
    async with engine.connect() as conn:
        return list((await conn.execute(stmt)).all())


async def search_studies(engine: AsyncEngine, query: Query, limit: int | None, offset: int,
                         within: Any = None) -> list[JsonDataset]:
    """``within``: a SELECT of the Study Instance UIDs the caller may read (None: all)."""
    conds = [_where(query, STUDY)]
    if within is not None:
        conds.append(studies.c.study_uid.in_(within))
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
        ds[t.MODALITIES_IN_STUDY] = element("CS", *[m for m in (ms or []) if m])
        ds[t.NUMBER_OF_STUDY_RELATED_SERIES] = element("IS", ns)
        ds[t.NUMBER_OF_STUDY_RELATED_INSTANCES] = element("IS", ni)
        out.append(ds)
    return out


async def search_series(engine: AsyncEngine, study_uid: str, query: Query, limit: int | None,
                        offset: int) -> list[JsonDataset]:
    n_inst = select(func.count()).where(instances.c.series_uid == series.c.series_uid).scalar_subquery()
    stmt = (select(series.c.attributes, n_inst).where(series.c.study_uid == study_uid,
                                                      _where(query, SERIES))
            .order_by(series.c.created_at, series.c.series_uid))
    rows = await _page(engine, stmt, limit, offset)
    out = []
    for attrs, ni in rows:
        ds = dict(attrs)
        ds[t.STUDY_INSTANCE_UID] = element("UI", study_uid)
        ds[t.NUMBER_OF_SERIES_RELATED_INSTANCES] = element("IS", ni)
        out.append(ds)
    return out


async def search_instances(engine: AsyncEngine, study_uid: str, series_uid: str | None,
                           query: Query, limit: int | None, offset: int) -> list[JsonDataset]:
    conds = [instances.c.study_uid == study_uid, _where(query, INSTANCE)]
    if series_uid:
        conds.append(instances.c.series_uid == series_uid)
    stmt = (select(instances.c.study_uid, instances.c.series_uid, instances.c.sop_class_uid,
                   instances.c.sop_instance_uid, instances.c.metadata[t.INSTANCE_NUMBER].label("number"))
            .where(*conds).order_by(instances.c.seq))
    rows = await _page(engine, stmt, limit, offset)
    out = []
    for st, se, cls, sop, number in rows:
        ds = {t.SOP_CLASS_UID: element("UI", cls), t.SOP_INSTANCE_UID: element("UI", sop),
              t.STUDY_INSTANCE_UID: element("UI", st), t.SERIES_INSTANCE_UID: element("UI", se)}
        if number:
            ds[t.INSTANCE_NUMBER] = number
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
