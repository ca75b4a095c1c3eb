"""The reading page under --auth oidc: the page and its settings are open (it signs in itself);
the worklist listing needs a token and takes the reader from it; the All tab and the statistics
are for admins; a principal restricted to Worklist Labels sees only those."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from sqlalchemy import text

from .dicom_instances import instance, part10, uid
from .oidc_issuer import AUDIENCE, bearer
from .oidc_login import CLIENT_ID, Login
from .reading_flow import claim, read_uid, stow


@pytest.fixture
def settings(settings, issuer):
    return dataclasses.replace(settings, auth="oidc", oidc_issuer=issuer.url, oidc_audience=AUDIENCE,
                               oidc_client_id=CLIENT_ID)


def root(http) -> str:
    return str(http.base_url).rstrip("/").removesuffix("/dicom-web")


async def test_page_and_settings_are_open_and_name_the_issuer(http, issuer):
    assert (await http.get(f"{root(http)}/ui/")).status_code == 200
    r = await http.get(f"{root(http)}/ui/config.json")
    assert r.status_code == 200
    assert r.json()["auth"] == "oidc"
    assert r.json()["oidc"] == {"issuer": issuer.url, "client_id": CLIENT_ID, "roles_claim": "realm_access.roles"}


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


async def test_sign_in_with_pkce_claim_next_renewal_and_sign_out(http, issuer, ui_url, new_page, server):
    expect = pytest.importorskip("playwright.async_api", reason="pip install playwright (the test extra)").expect
    login = Login(issuer, {"anna": ("reader",)}, expires_in=3)  # renewed about every 2.4 s
    issuer.login = login
    try:
        http.headers.update(bearer(issuer.token("admin-1", ("admin",))))
        await stow(http, [part10(instance(uid(), accession="ACC-SSO"))])
        await stow(http, [part10(instance(uid(), accession="ACC-SSO2"))])
        del http.headers["Authorization"]

        page = await new_page()
        await page.goto(ui_url)
        await page.get_by_role("button", name="Sign in").click()
        await page.get_by_label("Username").fill("anna")  # the issuer's own login page
        await page.get_by_role("button", name="Log in").click()
        await expect(page.get_by_text("Signed in as anna")).to_be_visible()
        assert "code=" not in page.url  # the code is taken off the address bar
        await expect(page.locator("#live")).to_have_text("Live")  # WebSocket with the token
        await expect(page.get_by_role("tab", name="All")).to_be_hidden()  # not an admin

        await page.get_by_role("button", name="Claim next").click()
        await expect(page.locator("#message")).to_have_text("Claimed First read ACC-SSO.")
        async with server.database.engine.connect() as conn:
            holder = (await conn.execute(text("SELECT performer_aet FROM workitems WHERE state = 'IN PROGRESS'"))).all()
        assert holder == [("anna",)]

        for _ in range(200):  # the page renews its token with the refresh token before it expires
            if "refresh_token" in login.grants:
                break
            await asyncio.sleep(0.1)
        assert login.grants[:2] == ["authorization_code", "refresh_token"]
        await page.get_by_role("tab", name="Available").click()
        await expect(page.get_by_role("row").filter(has_text="First read ACC-SSO2")).to_be_visible()
        stored = await page.evaluate("JSON.stringify({...localStorage}) + JSON.stringify({...sessionStorage})")
        assert "eyJ" not in stored  # no token outside memory

        await page.get_by_role("button", name="Sign out").click()
        await expect(page.get_by_role("button", name="Sign in")).to_be_visible()
        await expect(page.get_by_text("Signed in as anna")).to_be_hidden()
    finally:
        issuer.login = None
