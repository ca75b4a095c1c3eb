"""The statistics page (/ui/stats) in a real Chromium: the tables and Download CSV."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from .dicom_instances import instance, part10, uid
from .reading_flow import read, read_uid, stow

expect = pytest.importorskip("playwright.async_api", reason="pip install playwright (the test extra)").expect


async def test_statistics_page_and_csv_download(http, ui_url, new_page):
    study = uid()
    await stow(http, [part10(instance(study))])
    await read(http, read_uid(1, study), "ANNA", "NORMAL")
    await read(http, read_uid(2, study), "BEN", "RECALL")

    page = await new_page()
    await page.goto(ui_url + "stats")
    week = page.get_by_role("table", name="Last 7 days")
    await expect(week.get_by_role("row", name="ANNA")).to_contain_text("100 %")  # sent to arbitration
    await expect(week.get_by_role("row", name="All readers")).to_contain_text("2")
    await page.screenshot(path="/tmp/ui13-stats.png", full_page=True)

    async with page.expect_download() as waiting:
        await page.get_by_role("button", name="Download CSV").click()
    download = await waiting.value
    assert download.suggested_filename == "reader-statistics.csv"
    text = Path(await download.path()).read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    by_key = {(row["days"], row["reader"]): row for row in rows}
    assert by_key[("7", "(all)")]["reads_completed"] == "2"
    assert by_key[("28", "ANNA")]["first_reads"] == "1" and by_key[("28", "BEN")]["second_reads"] == "1"
    assert by_key[("7", "(all)")]["agreement"] == "0.0" and by_key[("7", "(all)")]["arbitration_share"] == "1.0"
