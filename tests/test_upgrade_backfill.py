"""An upgrade fills what rows of an older version lack (issue 10 residuals): a database migrated
to just before the backfill holds workitems as that version left them; the server's start
migrates it to head, and the reading page treats the old claims as it treats new ones."""

from __future__ import annotations

import itertools
import os
from urllib.parse import urlsplit, urlunsplit

import pytest
from sqlalchemy import insert, select, text

from ups_server.db import migrate
from ups_server.db.engine import make_engine
from ups_server.db.tables import workitems

from .workitems import el, new_workitem

_names = itertools.count()
CLAIMED, DONE, WAITING = "1.2.826.0.1.3680043.10.11.1", "1.2.826.0.1.3680043.10.11.2", "1.2.826.0.1.3680043.10.11.3"


def _before(path_suffix: str) -> str:
    """The revision that the migration in the file ending with ``path_suffix`` follows."""
    [script] = [s for s in migrate.scripts().walk_revisions() if s.path.endswith(path_suffix)]
    return script.down_revision


def _row(uid: str, state: str, performer: str | None) -> dict:
    return {"uid": uid, "state": state, "dataset": new_workitem(**{"00741000": el("CS", state)}),
            "priority": "MEDIUM", "priority_rank": 1, "performer_aet": performer, "read_group": "read",
            "reader": performer, "transaction_uid": "2.25.1" if performer else None}


@pytest.fixture
async def database_url(pg_admin_url):
    """A database at the revision before the claimant backfill with claims made then: one IN
    PROGRESS, one since COMPLETED (each with its performer and no claimant), one SCHEDULED."""
    name = f"ups_test_upgrade_{os.getpid()}_{next(_names)}"
    admin = make_engine(pg_admin_url, pool_size=1).execution_options(isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f"CREATE DATABASE {name}"))
    url = urlunsplit(urlsplit(pg_admin_url)._replace(path=f"/{name}"))
    engine = make_engine(url, pool_size=1)
    await migrate.upgrade(engine, _before("_claimant_backfill.py"))
    async with engine.begin() as conn:
        await conn.execute(insert(workitems), [_row(CLAIMED, "IN PROGRESS", "RADIOLOGIST_1"),
                                               _row(DONE, "COMPLETED", "RADIOLOGIST_2"),
                                               _row(WAITING, "SCHEDULED", None)])
    await engine.dispose()
    yield url
    async with admin.connect() as conn:
        await conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    await admin.dispose()


async def _mine(http, reader: str) -> list[dict]:
    root = str(http.base_url).rstrip("/").removesuffix("/dicom-web")
    r = await http.get(f"{root}/api/worklist", params={"tab": "mine", "reader": reader})
    assert r.status_code == 200, r.text
    return r.json()["rows"]


async def test_claims_made_before_the_claimant_was_kept_get_their_requester_as_claimant(http, server):
    async with server.database.engine.connect() as conn:
        claimants = dict((await conn.execute(select(workitems.c.uid, workitems.c.claimant))).all())
    assert claimants == {CLAIMED: "RADIOLOGIST_1", DONE: "RADIOLOGIST_2", WAITING: None}
    [mine] = await _mine(http, "RADIOLOGIST_1")
    assert mine["uid"] == CLAIMED and mine["holder"] == "RADIOLOGIST_1"
    assert [row["uid"] for row in await _mine(http, "RADIOLOGIST_2")] == [DONE]
