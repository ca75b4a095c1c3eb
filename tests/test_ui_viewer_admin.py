"""The reading page's Open link (--viewer-url), keyboard use, and the admin actions Cancel and
Reassign, in a real Chromium."""

from __future__ import annotations

import dataclasses
import re

import pytest

from .dicom_instances import instance, part10, uid
from .reading_flow import read_uid, stow, workitem

expect = pytest.importorskip("playwright.async_api", reason="pip install playwright (the test extra)").expect
VIEWER = "https://viewer.example/viewer?StudyInstanceUIDs={StudyInstanceUID}&acc={AccessionNumber}"


@pytest.fixture
def settings(settings):
    return dataclasses.replace(settings, viewer_url=VIEWER)


async def test_open_link_keyboard_claim_cancel_and_reassign(http, ui_url, new_page):
    study = uid()
    await stow(http, [part10(instance(study, accession="ACC V/1"))])
    page = await new_page()
    await page.goto(ui_url)
    reader = page.get_by_label("Reader", exact=True)
    await reader.fill("ANNA")
    await reader.press("Tab")
    await expect(page.locator("#live")).to_have_text("Live")

    first = page.get_by_role("row").filter(has_text="First read ACC V/1")
    open_link = first.get_by_role("button", name="Open")
    await expect(open_link).to_have_attribute(
        "href", f"https://viewer.example/viewer?StudyInstanceUIDs={study}&acc=ACC%20V%2F1")

    # keyboard only: focus Claim next and press Enter
    await page.get_by_role("button", name="Claim next").focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("#message")).to_have_text("Claimed First read ACC V/1.")
    # arrow keys move between the tabs
    await page.get_by_role("tab", name="Mine").focus()
    await page.keyboard.press("ArrowRight")
    await expect(page.get_by_role("tab", name="Available")).to_have_attribute("aria-selected", "true")

    # admin: reassign the claimed read to BEN (back to SCHEDULED), cancel the other read
    await page.get_by_role("tab", name="All").click()
    await first.get_by_role("button", name="Reassign").click()
    dialog = page.get_by_role("dialog", name="Reassign read")
    await dialog.get_by_label("New reader").fill("BEN")
    await dialog.get_by_role("button", name="Reassign read").click()
    await expect(page.locator("#message")).to_have_text("First read ACC V/1 is now scheduled for BEN.")
    ds = await workitem(http, read_uid(1, study))
    assert ds["00741000"]["Value"] == ["SCHEDULED"]
    assert ds["00404034"]["Value"][0]["00404009"]["Value"][0]["00080100"]["Value"] == ["BEN"]

    page.once("dialog", lambda d: d.accept())  # "Cancel Second read …?"
    await page.get_by_role("row").filter(has_text="Second read ACC V/1").get_by_role("button", name="Cancel").click()
    await expect(page.locator("#message")).to_have_text(re.compile("Canceled Second read ACC V/1"))
    assert (await workitem(http, read_uid(2, study)))["00741000"]["Value"] == ["CANCELED"]
