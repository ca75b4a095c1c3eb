"""Double reading fed by C-STORE from DCMTK ``storescu`` (real associations on a real port)."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import select

from ups_server.db.tables import instances

from .dicom_instances import instance, uid
from .reading_flow import read, read_uid, referenced_sops, study_workitems, workitem


def _dcmtk_storescu() -> str | None:
    """DCMTK's storescu (pynetdicom installs a Python ``storescu`` that may come first on PATH)."""
    for directory in os.environ.get("PATH", "").split(os.pathsep) + ["/usr/bin"]:
        candidate = Path(directory) / "storescu"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            out = subprocess.run([str(candidate), "--version"], capture_output=True, text=True, timeout=30,
                                 check=False)
            if "dcmtk" in (out.stdout + out.stderr).lower():
                return str(candidate)
    return None


STORESCU = _dcmtk_storescu()
pytestmark = [pytest.mark.dimse,
              pytest.mark.skipif(STORESCU is None, reason="DCMTK storescu is not installed")]

AE_RULES = """
version: 1
on_store:
  - id: mammo-read
    when:
      - {attribute: SendingApplicationEntityTitle, matches: "MAMMO.*"}
      - {attribute: Modality, equals: [MG, OT]}
    workitem: {uid: "1-{StudyInstanceUID}", group: read, label: "Read from {SendingApplicationEntityTitle}"}
"""



@pytest.fixture
def settings(settings, request, tmp_path):
    if getattr(request, "param", None) == "ae-rules":
        settings.rules = tmp_path / "ae.yaml"
        settings.rules.write_text(AE_RULES)
    return settings


async def storescu(settings, files, calling_ae: str = "MAMMO1") -> None:
    proc = await asyncio.create_subprocess_exec(
        STORESCU, "-aet", calling_ae, "-aec", settings.ae_title, "127.0.0.1", str(settings.dimse_port),
        *map(str, files), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, (out + err).decode()


def write(tmp_path, datasets) -> list:
    files = []
    for ds in datasets:
        path = tmp_path / f"{ds.SOPInstanceUID}.dcm"
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
    return files


async def test_double_reading_over_cstore(http, server, settings, tmp_path):
    study = uid()
    datasets = [instance(study) for _ in range(3)]
    await storescu(settings, write(tmp_path, datasets))
    async with server.database.engine.connect() as conn:
        rows = (await conn.execute(select(instances.c.source_ae, instances.c.receiving_ae))).all()
    assert set(rows) == {("MAMMO1", settings.ae_title)}
    for n in (1, 2):
        assert sorted(referenced_sops(await workitem(http, read_uid(n, study)))) == sorted(
            d.SOPInstanceUID for d in datasets)
    await read(http, read_uid(1, study), "READER_A", "NORMAL")
    await read(http, read_uid(2, study), "READER_B", "RECALL")
    assert await workitem(http, read_uid(3, study)) is not None


async def test_four_parallel_storescu_of_one_study(http, server, settings, tmp_path):
    study = uid()
    batches = [[instance(study, series) for _ in range(5)] for series in (uid() for _ in range(4))]
    dirs = []
    for i, batch in enumerate(batches):
        d = tmp_path / f"b{i}"
        d.mkdir()
        dirs.append(write(d, batch))
    await asyncio.gather(*(storescu(settings, files, f"MAMMO{i}") for i, files in enumerate(dirs)))
    expected = sorted(ds.SOPInstanceUID for b in batches for ds in b)
    assert sorted(w["uid"] for w in await study_workitems(server, study)) == sorted(
        [read_uid(1, study), read_uid(2, study)])
    for n in (1, 2):
        assert sorted(referenced_sops(await workitem(http, read_uid(n, study)))) == expected


@pytest.mark.parametrize("settings", ["ae-rules"], indirect=True)
async def test_condition_on_sending_ae(http, server, settings, tmp_path):
    mammo, ct = uid(), uid()
    await storescu(settings, write(tmp_path, [instance(mammo)]), "MAMMO7")
    await storescu(settings, write(tmp_path, [instance(ct)]), "CT1")
    ds = await workitem(http, read_uid(1, mammo))
    assert ds["00741204"]["Value"] == ["Read from MAMMO7"]
    assert await study_workitems(server, ct) == []


async def test_reader_identity_is_the_calling_ae_over_dimse(http, server, settings, tmp_path):
    """Claims over DIMSE N-ACTION: the calling AE title is the reader; it may not take both reads."""
    from .dimse_client import UPSClient

    study = uid()
    await storescu(settings, write(tmp_path, [instance(study)]))

    def claim_as(ae: str, wi: str) -> int:
        info = {"00741000": {"vr": "CS", "Value": ["IN PROGRESS"]}, "00081195": {"vr": "UI", "Value": [uid()]}}
        with UPSClient("127.0.0.1", settings.dimse_port, calling_ae=ae, called_ae=settings.ae_title) as scu:
            return scu.action(wi, 1, info, sop_class="1.2.840.10008.5.1.4.34.6.3").status

    assert await asyncio.to_thread(claim_as, "READER_A", read_uid(1, study)) == 0x0000
    assert await asyncio.to_thread(claim_as, "READER_A", read_uid(2, study)) == 0x0124
    assert await asyncio.to_thread(claim_as, "READER_B", read_uid(2, study)) == 0x0000
    rows = {w["uid"]: w["reader"] for w in await study_workitems(server, study)}
    assert rows == {read_uid(1, study): "READER_A", read_uid(2, study): "READER_B"}
