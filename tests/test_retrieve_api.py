"""Retrieve jobs over HTTP (issue 14): what is queued, what is refused (400 with the reason,
nothing queued), and the archive settings. The jobs against real archives are in
conformance/test_retrieve.py."""

from __future__ import annotations

import dataclasses

import pytest

from ups_server.cli import build_parser, settings_from
from ups_server.config import Settings
from ups_server.retrieve.archives import Archive, parse_archive

from .conftest import free_port
from .dicom_instances import uid
from .oidc_issuer import AUDIENCE, bearer


@pytest.fixture
def settings(settings, request):
    """An archive nobody answers at; its jobs wait an hour between attempts (none ends here)."""
    archives = [] if request.node.get_closest_marker("no_archives") else [f"DEAD=DEAD@127.0.0.1:{free_port()}"]
    return dataclasses.replace(settings, archives=archives, retrieve_retry_seconds=3600)


async def test_post_studies_queues_one_job_each(http):
    studies = [uid(), uid()]
    r = await http.post("/retrieve-jobs", json={"studies": studies})
    assert r.status_code == 202, r.text
    ids = [j["id"] for j in r.json()["jobs"]]
    assert len(ids) == 2
    for job_id, study in zip(ids, studies, strict=True):
        r = await http.get(f"/retrieve-jobs/{job_id}")
        assert r.status_code == 200
        job = r.json()
        assert job["id"] == job_id and job["study"] == study and job["state"] in ("queued", "running")
        assert {"archive", "instances_present_before", "instances_retrieved", "error"} <= set(job)
    listed = (await http.get("/retrieve-jobs")).json()["jobs"]
    assert sorted(j["id"] for j in listed) == sorted(ids)
    assert (await http.get("/retrieve-jobs", params={"state": "done"})).json() == {"jobs": []}


async def test_post_patient_id_and_accession_queues_one_lookup(http):
    r = await http.post("/retrieve-jobs", json={"patient_id": "MRN-1", "accession_number": "ACC-1"})
    assert r.status_code == 202, r.text
    [job] = r.json()["jobs"]
    found = (await http.get(f"/retrieve-jobs/{job['id']}")).json()
    assert (found["patient_id"], found["accession_number"], found["study"]) == ("MRN-1", "ACC-1", None)
    assert found["jobs"] == []


@pytest.mark.parametrize(("body", "reason"), [
    ("not json", "not valid JSON"),
    ([], "JSON object"),
    ({}, "expected"),
    ({"studies": []}, "1 to"),
    ({"studies": "1.2.3"}, "list"),
    ({"studies": ["1.2.x"]}, "not a Study Instance UID"),
    ({"studies": [1]}, "not a Study Instance UID"),
    ({"studies": ["1.2.3"], "patient_id": "P"}, "not both"),
    ({"patient_id": "P"}, "expected"),
    ({"patient_id": "P", "accession_number": ""}, "accession_number"),
    ({"patient_id": "P*", "accession_number": "A"}, "wildcards"),
    ({"patient_id": "P" * 65, "accession_number": "A"}, "64"),
])
async def test_bad_requests_are_refused_and_queue_nothing(http, body, reason):
    kwargs = {"content": body} if isinstance(body, str) else {"json": body}
    r = await http.post("/retrieve-jobs", **kwargs)
    assert r.status_code == 400 and reason in r.json()["message"], r.text
    assert (await http.get("/retrieve-jobs")).json() == {"jobs": []}


async def test_unknown_job_and_bad_state(http):
    assert (await http.get("/retrieve-jobs/999999")).status_code == 404
    assert (await http.get("/retrieve-jobs/abc")).status_code == 404
    r = await http.get("/retrieve-jobs", params={"state": "lost"})
    assert r.status_code == 400 and "queued" in r.json()["message"]


@pytest.mark.no_archives
async def test_without_archives_posting_is_a_conflict(http):
    r = await http.post("/retrieve-jobs", json={"studies": [uid()]})
    assert r.status_code == 409 and "--archive" in r.json()["message"]


def test_archive_settings_from_flags_environment_and_file(tmp_path):
    args = build_parser().parse_args(["serve", "--archive", "VNA=VNA_AE@vna:104", "--archive",
                                      "PACS=PACS_AE@pacs:11112?method=get&associations=4"])
    assert settings_from(args).archives == ["VNA=VNA_AE@vna:104", "PACS=PACS_AE@pacs:11112?method=get&associations=4"]
    env = Settings.load(None, {}, environ={"UPS_ARCHIVES": "A=A@h:1,B=B@h:2?method=get"})
    assert env.archives == ["A=A@h:1", "B=B@h:2?method=get"]
    config = tmp_path / "ups.yaml"
    config.write_text("archives:\n  - A=A@h:1\n  - B=B@h:2\n")
    assert Settings.load(config, {}, environ={}).archives == ["A=A@h:1", "B=B@h:2"]
    assert parse_archive("PACS=PACS_AE@pacs:11112?method=get&associations=4") == Archive(
        "PACS", "PACS_AE", "pacs", 11112, "get", 4)
    assert parse_archive("VNA=V@vna:104") == Archive("VNA", "V", "vna", 104, "move", 2)


@pytest.mark.parametrize(("spec", "reason"), [
    ("VNA", "expected NAME=AET@host:port"),
    ("VNA=V@host", "expected NAME=AET@host:port"),
    ("VNA=V@host:104?method=put", "method must be move or get"),
    ("VNA=V@host:104?associations=0", "at least 1"),
    ("VNA=V@host:104?retries=3", "unknown option"),
    ("VNA=V@host:99999", "not a TCP port"),
])
def test_bad_archive_settings_are_refused_with_the_reason(spec, reason):
    with pytest.raises(ValueError, match=reason):
        Settings.load(None, {"archives": [spec]}, environ={})


def test_duplicate_archive_names_are_refused():
    with pytest.raises(ValueError, match="more than once: A"):
        Settings(archives=["A=X@h:1", "A=Y@h:2"])


class TestUnderOidc:
    """Under --auth oidc the admin role, or the retrieve role, may queue and read retrieve jobs."""

    @pytest.fixture
    def settings(self, settings, issuer):
        return dataclasses.replace(settings, auth="oidc", oidc_issuer=issuer.url, oidc_audience=AUDIENCE)

    @pytest.mark.parametrize(("roles", "status"), [(("admin",), 202), (("retrieve",), 202),
                                                   (("reader", "arbitrator", "ingest"), 403)])
    async def test_roles(self, http, issuer, roles, status):
        headers = bearer(issuer.token(roles=roles))
        r = await http.post("/retrieve-jobs", json={"studies": [uid()]}, headers=headers)
        assert r.status_code == status, r.text
        assert (await http.get("/retrieve-jobs", headers=headers)).status_code == (200 if status == 202 else 403)
