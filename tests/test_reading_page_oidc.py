"""The reading page under --auth oidc: the page and its settings are open (it signs in itself);
the worklist listing needs a token and takes the reader from it; the All tab and the statistics
are for admins; a principal restricted to Worklist Labels sees only those."""

from __future__ import annotations

import dataclasses

import pytest

from .dicom_instances import instance, part10, uid
from .oidc_issuer import AUDIENCE, Issuer, bearer
from .reading_flow import claim, read_uid, stow


@pytest.fixture(scope="module")
def issuer():
    issuer = Issuer()
    yield issuer
    issuer.close()


@pytest.fixture
def settings(settings, issuer):
    return dataclasses.replace(settings, auth="oidc", oidc_issuer=issuer.url, oidc_audience=AUDIENCE,
                               oidc_client_id="reading-page")


def root(http) -> str:
    return str(http.base_url).rstrip("/").removesuffix("/dicom-web")


async def test_page_and_settings_are_open_and_name_the_issuer(http, issuer):
    assert (await http.get(f"{root(http)}/ui/")).status_code == 200
    r = await http.get(f"{root(http)}/ui/config.json")
    assert r.status_code == 200
    assert r.json()["auth"] == "oidc"
    assert r.json()["oidc"] == {"issuer": issuer.url, "client_id": "reading-page", "roles_claim": "realm_access.roles"}


async def test_worklist_and_statistics_by_role(http, issuer):
    study = uid()
    admin = bearer(issuer.token("admin-1", ("admin",)))
    http.headers.update(admin)  # the reading_flow helpers send the client's headers
    await stow(http, [part10(instance(study, accession="ACC-OIDC"))])
    http.headers.update(bearer(issuer.token("reader-1")))
    r, _ = await claim(http, read_uid(1, study), "reader-1")
    assert r.status_code == 200, r.text
    del http.headers["Authorization"]

    worklist = f"{root(http)}/api/worklist"
    assert (await http.get(worklist)).status_code == 401
    reader = bearer(issuer.token("reader-1"))
    r = await http.get(worklist, params={"tab": "mine", "reader": "someone-else"}, headers=reader)
    assert r.status_code == 200 and [row["uid"] for row in r.json()["rows"]] == [read_uid(1, study)]
    assert (await http.get(worklist, params={"tab": "all"}, headers=reader)).status_code == 403
    assert (await http.get(worklist, params={"tab": "all"}, headers=admin)).status_code == 200
    ingest = bearer(issuer.token("modality", ("ingest",)))
    assert (await http.get(worklist, headers=ingest)).status_code == 403

    elsewhere = bearer(issuer.token("reader-2", worklists=["CHEST"]))
    r = await http.get(worklist, params={"tab": "available"}, headers=elsewhere)
    assert r.status_code == 200 and r.json()["rows"] == [] and r.json()["counts"]["SCHEDULED"] == 0
    r = await http.get(worklist, params={"tab": "available"}, headers=bearer(issuer.token("reader-3")))
    assert [row["uid"] for row in r.json()["rows"]] == [read_uid(2, study)]

    stats = f"{root(http)}/admin/stats"
    assert (await http.get(stats)).status_code == 401
    assert (await http.get(stats, headers=reader)).status_code == 403
    assert (await http.get(stats, headers=admin)).status_code == 200
