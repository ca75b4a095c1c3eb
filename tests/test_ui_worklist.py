"""The reading page (/ui/) end to end: a real Chromium against the real server and PostgreSQL."""

from __future__ import annotations

import re

import pytest

expect = pytest.importorskip("playwright.async_api", reason="pip install playwright (the test extra)").expect

from .dicom_instances import instance, part10, uid
from .reading_flow import claim, read_uid, stow, workitem


async def open_as(new_page, ui_url, reader: str):
    page = await new_page()
    await page.goto(ui_url)
    await page.get_by_label("Reader", exact=True).fill(reader)
    await page.get_by_label("Reader", exact=True).press("Tab")  # change event: remembered, list reloaded
    await expect(page.locator("#live")).to_have_text("Live")
    return page


def row(page, text: str):
    return page.get_by_role("row").filter(has_text=text)


async def test_claim_next_then_complete_with_an_outcome(http, ui_url, new_page, tmp_path):
    study = uid()
    await stow(http, [part10(instance(study, accession="ACC-UI1", PatientName="Curie^Marie"))])
    page = await open_as(new_page, ui_url, "ANNA")
    await page.get_by_role("tab", name="Available").click()
    await expect(row(page, "First read ACC-UI1")).to_be_visible()
    await page.screenshot(path="/tmp/ui13-available.png", full_page=True)

    await page.get_by_role("button", name="Claim next").click()
    await expect(page.locator("#message")).to_have_text(re.compile("Claimed First read ACC-UI1"))
    await expect(page.get_by_role("tab", name="Mine")).to_have_attribute("aria-selected", "true")
    mine = row(page, "First read ACC-UI1")
    await expect(mine).to_contain_text("IN PROGRESS")
    ds = await workitem(http, read_uid(1, study))
    assert ds["00741000"]["Value"] == ["IN PROGRESS"]

    await mine.get_by_role("button", name="Complete").click()
    dialog = page.get_by_role("dialog", name="Complete read")
    await dialog.get_by_label("Recall").check()
    await dialog.get_by_label("Comment").fill("mass upper outer quadrant")
    await page.screenshot(path="/tmp/ui13-complete.png", full_page=True)
    await dialog.get_by_role("button", name="Complete read").click()
    await expect(page.locator("#message")).to_have_text(re.compile("Completed First read ACC-UI1: Recall"))
    await expect(mine).to_contain_text("COMPLETED")

    ds = await workitem(http, read_uid(1, study))
    assert ds["00741000"]["Value"] == ["COMPLETED"]
    performed = ds["00741216"]["Value"][0]
    assert performed["00404019"]["Value"][0]["00080100"]["Value"] == ["RECALL"]
    assert performed["00400280"]["Value"] == ["mass upper outer quadrant"]


async def test_a_claim_by_another_client_appears_without_reload(http, ui_url, new_page):
    study = uid()
    await stow(http, [part10(instance(study, accession="ACC-LIVE"))])
    page = await open_as(new_page, ui_url, "ANNA")
    await page.get_by_role("tab", name="All").click()
    first = row(page, "First read ACC-LIVE")
    await expect(first).to_contain_text("SCHEDULED")
    await page.evaluate("window.notReloaded = true")

    r, _ = await claim(http, read_uid(1, study), "BEN")  # another client, over UPS-RS
    assert r.status_code == 200, r.text

    await expect(first).to_contain_text("IN PROGRESS")
    await expect(first).to_contain_text("BEN")
    await expect(page.get_by_role("button", name="in progress: 1")).to_be_visible()
    assert await page.evaluate("window.notReloaded") is True


async def test_disagreeing_outcomes_give_the_arbitrator_an_arbitration_row(http, ui_url, new_page):
    study = uid()
    await stow(http, [part10(instance(study, accession="ACC-ARB"))])
    for reader, step, outcome in (("ANNA", "First", "Normal"), ("BEN", "Second", "Recall")):
        page = await open_as(new_page, ui_url, reader)
        await page.get_by_role("button", name="Claim next").click()
        await expect(page.locator("#message")).to_have_text(f"Claimed {step} read ACC-ARB.")
        mine = row(page, f"{step} read ACC-ARB")
        await expect(mine).to_contain_text("IN PROGRESS")
        await mine.get_by_role("button", name="Complete").click()
        dialog = page.get_by_role("dialog", name="Complete read")
        await dialog.get_by_label(outcome).check()
        await dialog.get_by_role("button", name="Complete read").click()
        await expect(mine).to_contain_text("COMPLETED")

    arbitrator = await open_as(new_page, ui_url, "CARL")
    await arbitrator.get_by_role("tab", name="Available").click()
    arbitration = row(arbitrator, "Arbitration")
    await expect(arbitration).to_contain_text("HIGH")
    await arbitration.get_by_role("button", name="Claim").click()
    await expect(arbitrator.locator("#message")).to_have_text(re.compile("Claimed Arbitration"))
    ds = await workitem(http, read_uid(3, study))
    assert ds["00741000"]["Value"] == ["IN PROGRESS"]


async def test_skip_gives_the_read_back_and_claim_next_passes_over_it(http, ui_url, new_page, server):
    x, y = uid(), uid()
    await stow(http, [part10(instance(x, accession="ACC-X"))])
    await stow(http, [part10(instance(y, accession="ACC-Y"))])
    anna = await open_as(new_page, ui_url, "ANNA")
    await anna.get_by_role("button", name="Claim next").click()
    await expect(anna.locator("#message")).to_have_text("Claimed First read ACC-X.")

    await row(anna, "First read ACC-X").get_by_role("button", name="Skip").click()
    await expect(anna.locator("#message")).to_have_text(re.compile("Skipped First read ACC-X"))
    ds = await workitem(http, read_uid(1, x))
    assert ds["00741000"]["Value"] == ["SCHEDULED"]

    # claim-next now passes over study X for ANNA (both of its reads), not for BEN
    await anna.get_by_role("button", name="Claim next").click()
    await expect(anna.locator("#message")).to_have_text("Claimed First read ACC-Y.")
    ben = await open_as(new_page, ui_url, "BEN")
    await ben.get_by_role("button", name="Claim next").click()
    await expect(ben.locator("#message")).to_have_text("Claimed First read ACC-X.")
