"""The dcm4chee "Double Reading UPS" verification, black box over DIMSE.

``python -m ups_server serve --rules rules/dcm4chee-double-reading.yaml`` as a subprocess;
a small study stored with DCMTK ``storescu``; each reader's workitem found with pynetdicom's
``findscu -U`` by Human Performer Code (RADIOLOGIST_1 / RADIOLOGIST_2); each read claimed,
given its UPS Performed Procedure Sequence (N-SET) and completed (N-ACTION) by a pynetdicom
SCU whose calling AE title is the reader; then the third (arbitration) workitem is found
SCHEDULED. Workitem UIDs are the dcm4chee name-based ones (DESIGN.md).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydicom import Dataset, dcmread
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import UnifiedProcedureStepPull, UnifiedProcedureStepPush

from .conftest import REPO, RunningServer
from .studies import name_based_uid, write_study

RULES = REPO / "rules" / "dcm4chee-double-reading.yaml"
PERFORMER = "ScheduledHumanPerformersSequence[0].HumanPerformerCodeSequence[0].CodeValue"
TOOL_TIMEOUT = 60


def dcmtk(tool: str) -> str | None:
    """The DCMTK ``tool`` on PATH (other packages install Python tools of the same name)."""
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        path = Path(directory) / tool
        if path.is_file() and os.access(path, os.X_OK):
            out = subprocess.run([str(path), "--version"], check=False, capture_output=True, text=True, timeout=10)
            if "dcmtk" in (out.stdout + out.stderr).lower():
                return str(path)
    return None


def findscu(server: RunningServer, cwd: Path, *keys: str) -> list[Dataset]:
    cwd.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "pynetdicom", "findscu", "-U", "-w", "-aet", "FINDSCU", "-aec", server.ae_title,
            "127.0.0.1", str(server.dimse_port)]
    for key in keys:
        args += ["-k", key]
    out = subprocess.run(args, check=False, cwd=cwd, capture_output=True, text=True, timeout=TOOL_TIMEOUT)
    assert out.returncode == 0, out.stdout + out.stderr
    return [dcmread(p) for p in sorted(cwd.glob("rsp*.dcm"))]


def _code(value: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "99LOCAL", value
    return item


def performed_procedure(reader: str) -> Dataset:
    """What a reader N-SETs before completing (PS3.4 Table CC.2.5-1, P/RC attributes)."""
    performer = Dataset()
    performer.HumanPerformerCodeSequence = [_code(reader)]
    performer.HumanPerformerName = reader
    item = Dataset()
    item.ActualHumanPerformersSequence = [performer]
    item.PerformedStationNameCodeSequence = [_code("WORKSTATION_1")]
    item.PerformedProcedureStepStartDateTime = "20261123110000"
    item.PerformedWorkitemCodeSequence = [_code("DOUBLE_READING")]
    item.PerformedProcedureStepEndDateTime = "20261123111500"
    item.OutputInformationSequence = []
    ds = Dataset()
    ds.UnifiedProcedureStepPerformedProcedureSequence = [item]
    return ds


def read_as(server: RunningServer, reader: str, uid: str, ae_title: str | None = None) -> list[int]:
    """Claim, N-SET, complete ``uid`` as ``reader`` (calling AE title ``ae_title``, by default the
    reader's name): upsscu's messages, UPS Push named on the Pull context. Returns the three
    DIMSE statuses."""
    ae = AE(ae_title=ae_title or reader)
    ae.add_requested_context(UnifiedProcedureStepPull)
    assoc = ae.associate("127.0.0.1", server.dimse_port, ae_title=server.ae_title)
    assert assoc.is_established, f"association as {reader} failed"
    txn = generate_uid()
    try:
        claim = Dataset()
        claim.ProcedureStepState, claim.TransactionUID = "IN PROGRESS", txn
        status_claim, _ = assoc.send_n_action(claim, 1, UnifiedProcedureStepPush, uid,
                                              meta_uid=UnifiedProcedureStepPull)
        update = performed_procedure(reader)
        update.TransactionUID = txn
        status_set, _ = assoc.send_n_set(update, UnifiedProcedureStepPush, uid, meta_uid=UnifiedProcedureStepPull)
        done = Dataset()
        done.ProcedureStepState, done.TransactionUID = "COMPLETED", txn
        status_done, _ = assoc.send_n_action(done, 1, UnifiedProcedureStepPush, uid,
                                             meta_uid=UnifiedProcedureStepPull)
        return [int(s.Status) for s in (status_claim, status_set, status_done)]
    finally:
        assoc.release()


def store_study(server: RunningServer, tmp_path: Path) -> str:
    storescu = dcmtk("storescu")
    if storescu is None:
        pytest.skip("DCMTK storescu is not installed (apt-get install dcmtk; .ci/run installs it)")
    study = generate_uid()
    files = write_study(tmp_path / "study", study)
    stored = subprocess.run([storescu, "-aet", "MODALITY", "-aec", server.ae_title, "127.0.0.1",
                             str(server.dimse_port), *map(str, files)],
                            check=False, capture_output=True, text=True, timeout=TOOL_TIMEOUT)
    assert stored.returncode == 0, stored.stdout + stored.stderr + server.log()
    return study


def assert_arbitration_scheduled(server: RunningServer, tmp_path: Path, study: str) -> None:
    arbitration = findscu(server, tmp_path / "arbitration", "ProcedureStepState=SCHEDULED", "SOPInstanceUID=",
                          "ProcedureStepLabel=", "StudyInstanceUID=")
    assert [str(m.SOPInstanceUID) for m in arbitration] == [name_based_uid(f"3-{study}")], server.log()
    assert arbitration[0].ProcedureStepLabel == "Arbitration"
    assert arbitration[0].StudyInstanceUID == study


@pytest.mark.parametrize("one_ae", [False, True], ids=["an AE per reader", "one upsscu AE for both reads"])
def test_dcm4chee_double_reading_over_dimse(start_ups_server, tmp_path, one_ae):
    """With ``one_ae`` exactly the wiki's verification: one upsscu (default AE title UPSSCU) finds
    each pre-assigned read by its Human Performer Code, claims it, N-SETs the performed procedure
    (updateUPS.xml) and completes it; the arbitration workitem 3-<study> is then SCHEDULED."""
    if not RULES.exists():
        pytest.skip(f"{RULES.relative_to(REPO)} is not in this tree")
    server = start_ups_server("--rules", str(RULES))
    study = store_study(server, tmp_path)

    found: dict[str, str] = {}
    for n, reader in ((1, "RADIOLOGIST_1"), (2, "RADIOLOGIST_2")):
        matches = findscu(server, tmp_path / reader, f"{PERFORMER}={reader}", "ProcedureStepState=SCHEDULED",
                          "SOPInstanceUID=", "StudyInstanceUID=")
        assert [str(m.SOPInstanceUID) for m in matches] == [name_based_uid(f"{n}-{study}")], server.log()
        assert matches[0].StudyInstanceUID == study
        found[reader] = str(matches[0].SOPInstanceUID)

    for reader, uid in found.items():
        statuses = read_as(server, reader, uid, "UPSSCU" if one_ae else None)
        assert statuses == [0x0000, 0x0000, 0x0000], server.log()

    assert_arbitration_scheduled(server, tmp_path, study)
