"""The matcher compiles to index-compatible SQL: sequence keys reach the GIN index on the
dataset (the performer codes: their own narrow GIN), column keys their b-tree indexes (DESIGN.md
"never a scan of datasets in Python"); a worklist page finds its keys in the (state, Worklist Label,
seq) index alone (start datetime and performer codes included)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select, text

from ups_server.db.tables import workitems
from ups_server.dicom.query import parse_http_query
from ups_server.ups.search import page_statement, where_clause


async def plan(server, params: list[tuple[str, str]], stmt=None) -> str:
    stmt = select(workitems.c.uid).where(where_clause(parse_http_query(params))) if stmt is None else stmt
    async with server.database.engine.connect() as conn:
        compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
        args = tuple(json.dumps(v) if isinstance(v, dict) else v
                     for v in (compiled.params[k] for k in compiled.positiontup or ()))
        await conn.execute(text("SET LOCAL enable_seqscan = off"))  # tiny test tables: force the choice
        rows = (await conn.exec_driver_sql("EXPLAIN " + compiled.string, args)).all()
    return "\n".join(r[0] for r in rows)


@pytest.mark.parametrize(("params", "index"), [
    ([("ReferencedRequestSequence.AccessionNumber", "ACC-1")], "workitems_dataset"),
    ([("00404034.00404009.00080100", "DR-A")], "workitems_performer_codes"),
    ([("ScheduledWorkitemCodeSequence.CodeValue", "READ")], "workitems_dataset"),
    ([("PatientName", "doe*")], "workitems_patient_name_ci"),
    ([("PatientID", "PAT-1")], "workitems_patient_id"),
    ([("ScheduledProcedureStepStartDateTime", "20261101-20261130")], "workitems_start_dt"),
])
async def test_uses_index(server, params, index):
    assert index in await plan(server, params)


async def test_a_performer_code_alone_is_matched_on_its_column_and_with_more_keys_also_in_the_dataset(server):
    alone = await plan(server, [("00404034.00404009.00080100", "DR-A")])
    assert "performer_codes @> '{DR-A}'" in alone and "jsonb_path_exists" not in alone
    both = await plan(server, [("00404034.00404009.00080100", "DR-A"), ("00404034.00404009.00080102", "99X")])
    assert "workitems_performer_codes" in both and "jsonb_path_exists" in both


@pytest.mark.parametrize("params", [
    [("00404034.00404009.00080100", "DR-A")],
    [("ScheduledProcedureStepStartDateTime", "20261101-20261130")],
])
async def test_a_worklist_page_finds_its_keys_in_the_worklist_index_alone(server, params):
    where = where_clause(parse_http_query([("ProcedureStepState", "SCHEDULED"), ("WorklistLabel", "WL-A"), *params]))
    page = await plan(server, [], page_statement(where, after=None, offset=0, limit=20))
    assert "Index Only Scan using workitems_state_label_seq" in page
