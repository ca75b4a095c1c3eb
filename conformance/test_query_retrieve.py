"""Query/Retrieve SCP for stored studies, driven by DCMTK: ``findscu -S`` / ``-P`` at STUDY, SERIES
and IMAGE level, ``movescu`` to an AE of --ae-table (movescu itself, listening), ``getscu``."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import generate_uid

from .conftest import RunningServer, free_port
from .studies import write_study
from .test_retrieve import sops, stow

DCMTK = Path("/usr/bin")  # DCMTK's tools (other findscu / movescu may be earlier on PATH)
MOVE_AE = "MOVESCU"


def tool(name: str) -> str:
    found = shutil.which(name, path=str(DCMTK))
    if found is None:
        pytest.skip(f"DCMTK's {name} is not installed (apt-get install dcmtk)")
    return found


@pytest.fixture(scope="module")
def move_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def server(start_module_server, move_port) -> RunningServer:
    return start_module_server("--ae-table", f"{MOVE_AE}=127.0.0.1:{move_port}")


@pytest.fixture(scope="module")
def stored(server, tmp_path_factory) -> dict[str, list[Path]]:
    """Two studies of one patient, stored by STOW-RS: study UID -> its files."""
    root = tmp_path_factory.mktemp("qr-studies")
    patient = f"QR-{generate_uid()[-10:]}"
    studies = {}
    for n, count in enumerate((3, 2)):
        study = generate_uid()
        studies[study] = write_study(root / str(n), study, count=count, patient_id=patient, accession=f"QR-ACC-{n}")
        stow(server, studies[study])
    return studies


def dcmtk(server: RunningServer, name: str, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run([tool(name), "-aec", server.ae_title, *args, "127.0.0.1", str(server.dimse_port)],
                          cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def find(server: RunningServer, cwd: Path, model: str, *keys: str) -> list:
    """findscu -S (Study Root) or -P (Patient Root), the responses as datasets."""
    result = dcmtk(server, "findscu", cwd, model, "-X", *(a for k in keys for a in ("-k", k)))
    assert result.returncode == 0, result.stdout + result.stderr
    return [dcmread(f) for f in sorted(cwd.glob("rsp*.dcm"))]


def test_findscu_study_root_at_study_series_and_image_level(server, stored, tmp_path):
    study, files = next(iter(stored.items()))
    patient = str(dcmread(files[0]).PatientID)
    found = find(server, tmp_path / "study", "-S", "QueryRetrieveLevel=STUDY", f"PatientID={patient}",
                 "StudyInstanceUID", "PatientName", "AccessionNumber", "NumberOfStudyRelatedInstances")
    assert sorted(str(ds.StudyInstanceUID) for ds in found) == sorted(stored)
    mine = next(ds for ds in found if ds.StudyInstanceUID == study)
    assert (str(mine.PatientName), mine.AccessionNumber, int(mine.NumberOfStudyRelatedInstances)) == (
        "Doe^Jane", "QR-ACC-0", 3)
    assert mine.QueryRetrieveLevel == "STUDY"

    found = find(server, tmp_path / "series", "-S", "QueryRetrieveLevel=SERIES", f"StudyInstanceUID={study}",
                 "SeriesInstanceUID", "Modality")
    assert [(str(ds.SeriesInstanceUID), ds.Modality) for ds in found] == [
        (str(dcmread(files[0]).SeriesInstanceUID), "OT")]

    series = str(dcmread(files[0]).SeriesInstanceUID)
    found = find(server, tmp_path / "image", "-S", "QueryRetrieveLevel=IMAGE", f"StudyInstanceUID={study}",
                 f"SeriesInstanceUID={series}", "SOPInstanceUID", "SOPClassUID")
    assert {str(ds.SOPInstanceUID) for ds in found} == sops(files)

    found = find(server, tmp_path / "nothing", "-S", "QueryRetrieveLevel=STUDY", "PatientID=NOBODY",
                 "StudyInstanceUID")
    assert found == []


def test_findscu_patient_root(server, stored, tmp_path):
    files = next(iter(stored.values()))
    patient = str(dcmread(files[0]).PatientID)
    found = find(server, tmp_path / "patient", "-P", "QueryRetrieveLevel=PATIENT", f"PatientID={patient}",
                 "PatientName")
    assert [(ds.PatientID, str(ds.PatientName)) for ds in found] == [(patient, "Doe^Jane")]
    found = find(server, tmp_path / "study", "-P", "QueryRetrieveLevel=STUDY", f"PatientID={patient}",
                 "StudyInstanceUID")
    assert sorted(str(ds.StudyInstanceUID) for ds in found) == sorted(stored)


def test_series_level_without_the_study_uid_is_refused(server, stored, tmp_path):
    result = dcmtk(server, "findscu", tmp_path, "-v", "-S", "-k", "QueryRetrieveLevel=SERIES",
                   "-k", "SeriesInstanceUID")
    assert "Received Final Find Response (Error: DataSetDoesNotMatchSOPClass)" in result.stdout + result.stderr  # A900


def test_movescu_sends_a_study_to_an_ae_of_the_ae_table(server, stored, move_port, tmp_path):
    study, files = next(iter(stored.items()))
    out = tmp_path / "moved"
    out.mkdir()
    result = dcmtk(server, "movescu", tmp_path, "-S", "-aet", MOVE_AE, "-aem", MOVE_AE, "--port", str(move_port),
                   "-od", str(out), "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}")
    assert result.returncode == 0, result.stdout + result.stderr
    received = list(out.iterdir())
    assert {str(dcmread(f).SOPInstanceUID) for f in received} == sops(files)
    assert dcmread(received[0]).PixelData == dcmread(files[0]).PixelData


def test_movescu_to_an_ae_not_in_the_ae_table_is_refused(server, stored, tmp_path):
    study = next(iter(stored))
    result = dcmtk(server, "movescu", tmp_path, "-v", "-S", "-aem", "NOBODY", "-k", "QueryRetrieveLevel=STUDY",
                   "-k", f"StudyInstanceUID={study}")
    assert "Received Final Move Response (Refused: MoveDestinationUnknown)" in result.stdout + result.stderr  # A801


def test_getscu_fetches_a_series_and_one_instance(server, stored, tmp_path):
    study, files = list(stored.items())[1]
    series = str(dcmread(files[0]).SeriesInstanceUID)
    out = tmp_path / "series"
    out.mkdir()
    result = dcmtk(server, "getscu", tmp_path, "-S", "-od", str(out), "-k", "QueryRetrieveLevel=SERIES",
                   "-k", f"StudyInstanceUID={study}", "-k", f"SeriesInstanceUID={series}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert {str(dcmread(f).SOPInstanceUID) for f in out.iterdir()} == sops(files)

    one = str(dcmread(files[1]).SOPInstanceUID)
    out = tmp_path / "image"
    out.mkdir()
    result = dcmtk(server, "getscu", tmp_path, "-S", "-od", str(out), "-k", "QueryRetrieveLevel=IMAGE",
                   "-k", f"StudyInstanceUID={study}", "-k", f"SeriesInstanceUID={series}",
                   "-k", f"SOPInstanceUID={one}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert [str(dcmread(f).SOPInstanceUID) for f in out.iterdir()] == [one]
