"""The audit trail: rows for stored studies, rule effects, study reads and authentication failures,
read back with GET /admin/audit (admins only) and `ups-server audit export`."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import io
import json
import subprocess
import sys
import time

import pytest

from .dicom_instances import instance, multipart, part10, uid
from .oidc_issuer import AUDIENCE, bearer
from .processes import REPO


async def stow(http, study: str, headers: dict[str, str] | None = None):
    body, ctype = multipart([part10(instance(study, uid())) for _ in range(2)])
    r = await http.post("/studies", content=body, headers={"Content-Type": ctype, **(headers or {})})
    assert r.status_code == 200, r.text


def admin_url(base_url: str) -> str:
    return base_url.rsplit("/", 1)[0] + "/admin/audit"


def summary(rows: list[dict]) -> list[tuple]:
    return [(r["event"], r["what"], r["outcome"]) for r in rows]


async def test_store_rules_and_reads_are_audited(http, base_url, database_url):
    study = uid()
    await stow(http, study)
    r = await http.get(f"/studies/{study}/metadata")
    assert r.status_code == 200
    r = await http.get(admin_url(base_url), params={"study": study})
    assert r.status_code == 200
    rows = r.json()
    assert summary(rows) == [
        ("DICOM Instances Transferred", "store", 0),
        ("Procedure Record", "rule first-read", 0),
        ("Procedure Record", "rule second-read", 0),
        ("DICOM Instances Accessed", "metadata", 0),
    ]
    assert rows[0]["detail"] == "2 instance(s) stored" and rows[0]["address"] == "127.0.0.1"
    assert [r["action"] for r in rows] == ["C", "C", "C", "R"]
    assert all(r["workitem_uid"] for r in rows[1:3])
    assert not any("transaction" in json.dumps(r).lower() for r in rows)

    r = await http.get(admin_url(base_url), params={"study": study, "since": "2999-01-01"})
    assert r.json() == []
    r = await http.get(admin_url(base_url), params={"since": "yesterday"})
    assert r.status_code == 400 and "ISO 8601" in r.json()["message"]

    # the command line export, CSV and JSON
    exported = [row for row in csv.DictReader(io.StringIO(await export(database_url, "csv")))
                if row["study_uid"] == study]
    assert [row["what"] for row in exported] == ["store", "rule first-read", "rule second-read", "metadata"]
    exported = json.loads(await export(database_url, "json"))
    assert [row["what"] for row in exported if row["study_uid"] == study][:1] == ["store"]


async def export(database_url: str, fmt: str) -> str:
    args = [sys.executable, "-m", "ups_server", "audit", "export", "--database-url", database_url,
            "--since", "2000-01-01", "--format", fmt]
    out = await asyncio.to_thread(subprocess.run, args, check=False, cwd=REPO, capture_output=True, text=True,
                                  timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture
def oidc(settings, issuer):
    return dataclasses.replace(settings, auth="oidc", oidc_issuer=issuer.url, oidc_audience=AUDIENCE)


class TestUnderOidc:
    @pytest.fixture
    def settings(self, oidc):
        return oidc

    async def test_the_audit_is_for_admins_and_records_failed_authentication(self, http, base_url, issuer):
        now = int(time.time())
        r = await http.get("/workitems", headers=bearer(issuer.token("mallory", exp=now - 3600, iat=now - 7200)))
        assert r.status_code == 401
        r = await http.get(admin_url(base_url), headers=bearer(issuer.token("reader-1", ("reader",))))
        assert r.status_code == 403
        r = await http.get(admin_url(base_url), headers=bearer(issuer.token("boss", ("admin",))))
        assert r.status_code == 200
        [failure] = [row for row in r.json() if row["event"] == "User Authentication"]
        assert failure["outcome"] == 4 and failure["address"] == "127.0.0.1"
        assert "expired" in failure["detail"] and failure["subject"] is None
        r = await http.get(admin_url(base_url), headers=bearer(issuer.token("boss", ("admin",))),
                           params={"subject": "boss"})
        [used] = r.json()
        assert (used["event"], used["subject"], used["display_name"]) == ("Audit Log Used", "boss", "boss")
