"""A rule failing at run time leaves the instance stored (and recorded in rule_failures);
``ups-server rules apply`` replays the on_store rules idempotently, also for studies stored
before a rule existed."""

from __future__ import annotations

import subprocess
import sys

import pytest
from sqlalchemy import func, select

from ups_server.db.tables import instances, rule_failures
from ups_server.paths import rules_dir

from .dicom_instances import instance, part10, uid
from .reading_flow import read_uid, referenced_sops, stow, study_workitems, workitem

BROKEN = """
version: 1
on_store:
  - id: needs-description
    workitem:
      uid: "1-{StudyInstanceUID}"
      group: read
      label: "{StudyDescription}"   # empty when the study has no description: the create fails
"""
FIXED = BROKEN.replace('"{StudyDescription}"', '"Read {AccessionNumber}"')


@pytest.fixture
def settings(settings, tmp_path):
    settings.rules = tmp_path / "rules.yaml"
    settings.rules.write_text(BROKEN)
    return settings


def _apply(settings, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "ups_server", "rules", "apply", "--database-url", settings.database_url,
           "--data-dir", str(settings.data_dir), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


async def test_failing_rule_keeps_instance_and_apply_replays(http, server, settings, tmp_path):
    study = uid()
    first, second = instance(study), instance(study)
    await stow(http, [part10(first), part10(second)])
    async with server.database.engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(instances))).scalar_one() == 2
        failures = (await conn.execute(select(rule_failures))).mappings().all()
    assert [(f["rule"], f["study_uid"], f["trigger"]) for f in failures] == [("needs-description", study,
                                                                             "on_store")] * 2
    assert "ProcedureStepLabel" in failures[0]["error"]
    assert await study_workitems(server, study) == []

    fixed = tmp_path / "fixed.yaml"
    fixed.write_text(FIXED)
    dry = _apply(settings, "--rules", str(fixed), "--study", study, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would create 1 workitem" in dry.stdout
    assert await study_workitems(server, study) == []

    done = _apply(settings, "--rules", str(fixed), "--study", study)
    assert done.returncode == 0, done.stderr
    ds = await workitem(http, read_uid(1, study))
    assert sorted(referenced_sops(ds)) == sorted([first.SOPInstanceUID, second.SOPInstanceUID])

    again = _apply(settings, "--rules", str(fixed), "--all")
    assert again.returncode == 0 and "created 0 workitem(s)" in again.stdout
    assert len(await study_workitems(server, study)) == 1
    assert len(referenced_sops(await workitem(http, read_uid(1, study)))) == 2


async def test_apply_creates_reads_for_studies_stored_before_the_rule(http, server, settings):
    studies = [uid(), uid()]
    for s in studies:
        await server.ingest.store(part10(instance(s)))  # the broken rule: no workitems
    bundled = str(rules_dir() / "double-reading.yaml")
    done = _apply(settings, "--rules", bundled, "--all")
    assert done.returncode == 0, done.stderr + done.stdout
    for s in studies:
        assert sorted(w["uid"] for w in await study_workitems(server, s)) == sorted([read_uid(1, s), read_uid(2, s)])


async def test_apply_with_a_broken_rule_file_fails(settings, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("on_store: 3\n")
    done = _apply(settings, "--rules", str(bad), "--all")
    assert done.returncode == 1 and f"{bad}:1: on_store" in done.stderr
