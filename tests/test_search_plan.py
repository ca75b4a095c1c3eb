"""The matcher compiles to index-compatible SQL: sequence keys reach the GIN index on the
dataset, column keys their b-tree indexes (DESIGN.md "never a scan of datasets in Python")."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select, text

from ups_server.db.tables import workitems
from ups_server.dicom.query import parse_http_query
from ups_server.ups.search import where_clause


async def plan(server, params: list[tuple[str, str]]) -> str:
    stmt = select(workitems.c.uid).where(where_clause(parse_http_query(params)))
    async with server.database.engine.connect() as conn:
        compiled = stmt.compile(dialect=conn.dialect)
        args = tuple(json.dumps(v) if isinstance(v, dict) else v
                     for v in (compiled.params[k] for k in compiled.positiontup))
        await conn.execute(text("SET LOCAL enable_seqscan = off"))  # tiny test tables: force the choice
        rows = (await conn.exec_driver_sql("EXPLAIN " + compiled.string, args)).all()
    return "\n".join(r[0] for r in rows)


@pytest.mark.parametrize(("params", "index"), [
    ([("ReferencedRequestSequence.AccessionNumber", "ACC-1")], "workitems_dataset"),
    ([("00404034.00404009.00080100", "DR-A")], "workitems_dataset"),
    ([("ScheduledWorkitemCodeSequence.CodeValue", "READ")], "workitems_dataset"),
    ([("PatientName", "doe*")], "workitems_patient_name_ci"),
    ([("PatientID", "PAT-1")], "workitems_patient_id"),
    ([("ScheduledProcedureStepStartDateTime", "20261101-20261130")], "workitems_start_dt"),
])
async def test_uses_index(server, params, index):
    assert index in await plan(server, params)
