"""DIMSE interoperability with clients nobody here wrote: pynetdicom's findscu app (a subprocess)
and the message sequence of dcm4che's upsscu (emulated with a pynetdicom SCU)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from pydicom import dcmread
from pynetdicom.sop_class import (
    UnifiedProcedureStepPull,
    UnifiedProcedureStepQuery,
    UnifiedProcedureStepWatch,
)

from ups_server.dicom.uids import UPS_PULL, UPS_PUSH
from ups_server.ups.requests import UPSRequest

from .dimse_client import UPSClient
from .workitems import code, el, new_workitem, performed_procedure, state_change

ROOT = "1.2.826.0.1.3680043.10.5"
TXN = f"{ROOT}.900.1"
PERFORMER_KEY = "ScheduledHumanPerformersSequence[0].HumanPerformerCodeSequence[0].CodeValue"


pytestmark = pytest.mark.dimse


def _assigned_to(performer: str) -> dict:
    return new_workitem(**{"00404034": {"vr": "SQ", "Value": [{
        "00404009": {"vr": "SQ", "Value": [code(performer, "99LOCAL", performer)]},
        "00404037": el("PN", performer), "00404036": el("LO", "Hospital"),
    }]}})


async def findscu(port: int, cwd: Path, *keys: str) -> list:
    """Run ``python -m pynetdicom findscu -U`` and read the responses it wrote (-w)."""
    args = [sys.executable, "-m", "pynetdicom", "findscu", "-U", "-w", "-aec", "UPS_SERVER", "127.0.0.1", str(port)]
    for key in keys:
        args += ["-k", key]
    proc = await asyncio.create_subprocess_exec(*args, cwd=cwd, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode()
    return [dcmread(p) for p in sorted(cwd.glob("rsp*.dcm"))]


async def test_pynetdicom_findscu_finds_workitems_by_performer_code(server, tmp_path):  # UPS-SOP-03
    for i, performer in enumerate(["RADIOLOGIST_1", "RADIOLOGIST_2", "RADIOLOGIST_1"]):
        await server.ups.create(UPSRequest.direct(f"{ROOT}.1.{i}", _assigned_to(performer)))
    await server.ups.create(UPSRequest.direct(f"{ROOT}.1.9", new_workitem()))  # nobody's
    _, port = server.dimse.address
    found = await findscu(port, tmp_path, f"{PERFORMER_KEY}=RADIOLOGIST_1", "SOPInstanceUID=",
                          "ProcedureStepState=")
    assert {str(ds.SOPInstanceUID) for ds in found} == {f"{ROOT}.1.0", f"{ROOT}.1.2"}
    for ds in found:
        assert ds.ProcedureStepState == "SCHEDULED"
        performer = ds.ScheduledHumanPerformersSequence[0].HumanPerformerCodeSequence[0]
        assert performer.CodeValue == "RADIOLOGIST_1"
        # only the requested keys come back
        assert set(ds.dir()) <= {"SOPInstanceUID", "ProcedureStepState", "ScheduledHumanPerformersSequence",
                                 "SpecificCharacterSet"}


async def test_findscu_without_keys_returns_every_match_by_uid(server, tmp_path):
    # `findscu -M UPSQuery` (dcm4che) with no keys sends an Identifier without a single key:
    # every workitem matches (UPS-FIND-07, as GET /workitems without keys) and each response
    # holds at least its SOP Instance UID (an empty response cannot be encoded: C312 before).
    # pynetdicom's findscu cannot send a zero-length data set, so the Identifier here holds only
    # Specific Character Set, which is never a key (UPS-FIND-06): the same query, no keys.
    uids = [f"{ROOT}.2.{i}" for i in range(3)]
    for uid in uids:
        await server.ups.create(UPSRequest.direct(uid, new_workitem()))
    _, port = server.dimse.address
    found = await findscu(port, tmp_path, "SpecificCharacterSet=ISO_IR 100")
    assert [str(ds.SOPInstanceUID) for ds in found] == uids


async def test_identifier_without_keys_over_each_find_model(server):
    # the same over UPS Pull, Watch and Query, with the final status Success (no C312 / C000)
    uid = f"{ROOT}.3.1"
    await server.ups.create(UPSRequest.direct(uid, new_workitem()))
    host, port = server.dimse.address
    for model in (UnifiedProcedureStepPull, UnifiedProcedureStepWatch, UnifiedProcedureStepQuery):
        with UPSClient(host, port) as scu:
            status, matches = await asyncio.to_thread(scu.find, {"00080005": el("CS", "ISO_IR 100")}, model)
        assert status == 0x0000, hex(status)
        assert [m["00080018"] for m in matches] == [el("UI", uid)]
        assert set(matches[0]) <= {"00080005", "00080018"}  # nothing but the UID (and character set)


async def test_upsscu_message_sequence_succeeds(server):
    """dcm4che upsscu: N-CREATE on Push, then N-ACTION (Transaction UID + Procedure Step State)
    and N-SET (UPS Performed Procedure Sequence) naming UPS Push on the Pull context."""
    host, port = server.dimse.address
    uid = f"{ROOT}.2.1"
    no_start = {k: v for k, v in new_workitem().items() if k != "00404005"}  # upsscu -O create sends none

    def session() -> list[int]:
        with UPSClient(host, port, "UPSSCU") as c:
            return [
                c.create(no_start, uid).status,
                c.action(uid, 1, state_change("IN PROGRESS", TXN), UPS_PUSH, UPS_PULL).status,
                c.set(uid, {**performed_procedure(), "00081195": el("UI", TXN)}, UPS_PUSH, UPS_PULL).status,
                c.action(uid, 1, state_change("COMPLETED", TXN), UPS_PUSH, UPS_PULL).status,
            ]

    statuses = await asyncio.to_thread(session)
    assert statuses == [0xB300, 0x0000, 0x0000, 0x0000]  # created with modifications (start time filled)
    assert (await server.ups.retrieve(uid))["00741000"]["Value"] == ["COMPLETED"]
