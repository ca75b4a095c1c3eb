"""Retrieve jobs against real archives: two Orthanc servers (Debian's package) as the VNA (primary,
C-MOVE to this server) and the PACS (secondary, C-GET), each with this server in its modality
list. Jobs are posted over HTTP and followed until they end; what arrives must be stored and
read by the rules (the two read workitems) like any other study."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydicom import dcmread
from pydicom.uid import generate_uid

from .conftest import RunningServer, free_port
from .orthanc import Orthanc, run_orthanc, sent_instances, upload
from .studies import write_study
from .test_orthanc_dicomweb import assert_read_workitems

AE = "UPS_SERVER"
FINAL = ("done", "not_found", "failed")
WAIT_SECONDS = 60


def post_jobs(server: RunningServer, body: dict) -> list[int]:
    r = httpx.post(f"{server.base_url}/retrieve-jobs", json=body, timeout=10)
    assert r.status_code == 202, r.text
    return [job["id"] for job in r.json()["jobs"]]


def job(server: RunningServer, job_id: int) -> dict:
    r = httpx.get(f"{server.base_url}/retrieve-jobs/{job_id}", timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def wait_for(server: RunningServer, job_id: int, states: tuple[str, ...] = FINAL) -> dict:
    deadline = time.monotonic() + WAIT_SECONDS
    while (found := job(server, job_id))["state"] not in states:
        assert time.monotonic() < deadline, f"job {found} not in {states}; log:\n{server.log()}"
        time.sleep(0.2)
    return found


def sops(files: list[Path]) -> set[str]:
    return {str(dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in files}


def stow(server: RunningServer, files: list[Path]) -> None:
    boundary = "b0undary"
    body = b"".join(b"--" + boundary.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + f.read_bytes()
                    + b"\r\n" for f in files) + b"--" + boundary.encode() + b"--\r\n"
    r = httpx.post(f"{server.base_url}/studies", content=body, timeout=30,
                   headers={"Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}'})
    assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def archives(tmp_path_factory) -> Iterator[tuple[Orthanc, Orthanc, int]]:
    """The VNA and the PACS, knowing this server (AE UPS_SERVER) at a DIMSE port chosen now."""
    dimse_port = free_port()
    me = {"ups": [AE, "127.0.0.1", dimse_port]}
    root = tmp_path_factory.mktemp("archives")
    with run_orthanc(root / "vna", "VNA", me, verbose=True) as vna, run_orthanc(root / "pacs", "PACS", me) as pacs:
        yield vna, pacs, dimse_port


@pytest.fixture(scope="module")
def server(start_module_server, archives) -> RunningServer:
    vna, pacs, dimse_port = archives
    return start_module_server("--archive", f"VNA=VNA@127.0.0.1:{vna.dicom_port}",
                               "--archive", f"PACS=PACS@127.0.0.1:{pacs.dicom_port}?method=get",
                               dimse_port=dimse_port, ae_title=AE)


def test_study_only_in_the_primary_is_moved_here_and_read(tmp_path, archives, server):
    vna, _, _ = archives
    study = generate_uid()
    files = write_study(tmp_path, study, count=3)
    upload(vna.url, files)
    [job_id] = post_jobs(server, {"studies": [study]})
    found = wait_for(server, job_id)
    assert found | {"id": job_id, "state": "done", "study": study, "archive": "VNA", "error": None,
                    "instances_present_before": 0, "instances_retrieved": 3} == found
    assert found["state"] == "done" and found["archive"] == "VNA" and found["instances_retrieved"] == 3
    assert_read_workitems(server, study, sops(files))


def test_study_only_in_the_secondary_comes_by_c_get(tmp_path, archives, server):
    _, pacs, _ = archives
    study = generate_uid()
    files = write_study(tmp_path, study, count=2)
    upload(pacs.url, files)
    [job_id] = post_jobs(server, {"studies": [study]})
    found = wait_for(server, job_id)
    assert (found["state"], found["archive"], found["error"]) == ("done", "PACS", None)
    assert (found["instances_present_before"], found["instances_retrieved"]) == (0, 2)
    assert_read_workitems(server, study, sops(files))


def test_study_in_neither_archive_is_not_found(server):
    study = generate_uid()
    [job_id] = post_jobs(server, {"studies": [study]})
    found = wait_for(server, job_id)
    assert found["state"] == "not_found" and found["archive"] is None
    assert study in found["error"] and "VNA" in found["error"] and "PACS" in found["error"]


def test_partly_stored_study_gets_only_its_missing_instances(tmp_path, archives, server):
    vna, _, _ = archives
    study = generate_uid()
    files = write_study(tmp_path, study, count=4)
    orthanc_ids = [answer["ID"] for answer in upload(vna.url, files)]
    stow(server, files[:2])
    sent_before = len(sent_instances(vna))
    [job_id] = post_jobs(server, {"studies": [study]})
    found = wait_for(server, job_id)
    assert (found["state"], found["archive"], found["error"]) == ("done", "VNA", None)
    assert (found["instances_present_before"], found["instances_retrieved"]) == (2, 2)
    assert sorted(sent_instances(vna)[sent_before:]) == sorted(orthanc_ids[2:])  # only the missing crossed
    assert_read_workitems(server, study, sops(files))


def test_patient_id_and_accession_give_one_job_per_study_found(tmp_path, archives, server):
    vna, _, _ = archives
    patient, accession = f"PAT-{generate_uid()[-8:]}", f"ACC-{generate_uid()[-8:]}"
    studies = sorted(generate_uid() for _ in range(2))
    files = {s: write_study(tmp_path / s, s, count=2, patient_id=patient, accession=accession) for s in studies}
    other = write_study(tmp_path / "other", generate_uid(), count=1, patient_id=patient, accession="ACC-OTHER")
    upload(vna.url, [f for fs in files.values() for f in fs] + other)
    [lookup_id] = post_jobs(server, {"patient_id": patient, "accession_number": accession})
    lookup = wait_for(server, lookup_id)
    assert (lookup["state"], lookup["archive"], lookup["patient_id"], lookup["accession_number"]) == (
        "done", "VNA", patient, accession)
    assert len(lookup["jobs"]) == 2
    results = [wait_for(server, i) for i in lookup["jobs"]]
    assert sorted(r["study"] for r in results) == studies
    assert all((r["state"], r["archive"], r["instances_retrieved"], r["lookup"]) == ("done", "VNA", 2, lookup_id)
               for r in results)
    for study in studies:
        assert_read_workitems(server, study, sops(files[study]))


def test_patient_id_and_accession_in_neither_archive_is_not_found(server):
    [lookup_id] = post_jobs(server, {"patient_id": "NOBODY", "accession_number": "NOTHING"})
    found = wait_for(server, lookup_id)
    assert found["state"] == "not_found" and found["jobs"] == []
    assert "NOBODY" in found["error"] and "NOTHING" in found["error"]


def test_unreachable_archive_is_retried_then_the_job_fails_with_the_reason(start_ups_server):
    down = free_port()  # nothing listens there
    server = start_ups_server("--archive", f"DOWN=DOWN@127.0.0.1:{down}", "--retrieve-attempts", "3",
                              "--retrieve-retry-seconds", "1")
    [job_id] = post_jobs(server, {"studies": [generate_uid()]})
    found = wait_for(server, job_id)
    assert (found["state"], found["attempts"]) == ("failed", 3)
    assert f"DOWN (DOWN@127.0.0.1:{down})" in found["error"] and "did not answer" in found["error"]
    log = server.log()  # the retries, with the delay doubling
    assert f"job {job_id}: attempt 1 failed" in log and "retry in 1s" in log
    assert f"job {job_id}: attempt 2 failed" in log and "retry in 2s" in log


def test_a_job_running_when_the_server_restarts_resumes(tmp_path, start_ups_server):
    """The archive hangs (SIGSTOP) while the job is running; the server restarts; the job goes on."""
    dimse_port = free_port()
    with run_orthanc(tmp_path / "vna", "VNA", {"ups": [AE, "127.0.0.1", dimse_port]}) as vna:
        study = generate_uid()
        files = write_study(tmp_path / "study", study, count=2)
        upload(vna.url, files)
        args = ("--archive", f"VNA=VNA@127.0.0.1:{vna.dicom_port}")
        server = start_ups_server(*args, dimse_port=dimse_port, ae_title=AE)
        os.kill(vna.process.pid, signal.SIGSTOP)
        try:
            [job_id] = post_jobs(server, {"studies": [study]})
            assert wait_for(server, job_id, ("running",) + FINAL)["state"] == "running"
            assert server.stop() in (0, -signal.SIGTERM)
        finally:
            os.kill(vna.process.pid, signal.SIGCONT)
        server = start_ups_server(*args, data_dir=server.data_dir, dimse_port=dimse_port, ae_title=AE)
        found = wait_for(server, job_id)
    assert (found["state"], found["archive"], found["instances_retrieved"], found["attempts"]) == ("done", "VNA", 2, 2)
    assert_read_workitems(server, study, sops(files))


def retrieve_cli(command: str, server: RunningServer, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([command, "retrieve", "--url", server.base_url, *args], capture_output=True, text=True,
                          timeout=WAIT_SECONDS, check=False)


def test_cli_waits_shows_a_summary_and_exits_1_when_a_study_is_not_found(tmp_path, archives, server,
                                                                         ups_server_command):
    vna, _, _ = archives
    found, missing = generate_uid(), generate_uid()
    upload(vna.url, write_study(tmp_path, found, count=2))
    result = retrieve_cli(ups_server_command, server, "--study", found, missing, "--wait")
    assert result.returncode == 1, result.stdout + result.stderr
    rows = {line.split()[2]: line.split() for line in result.stdout.splitlines()[1:]}
    assert rows[found][1:6] == ["done", found, "VNA", "0", "2"]
    assert rows[missing][1:4] == ["not_found", missing, "-"] and "none of the archives" in result.stdout
    assert "2/2 jobs ended" in result.stderr  # the progress line


def test_cli_reads_a_csv_of_studies_and_patient_accession_pairs(tmp_path, archives, server, ups_server_command):
    vna, pacs, _ = archives
    by_uid, by_accession = generate_uid(), generate_uid()
    upload(vna.url, write_study(tmp_path / "a", by_uid, count=1))
    upload(pacs.url, write_study(tmp_path / "b", by_accession, count=2, patient_id="CSV-PAT", accession="CSV-ACC"))
    sheet = tmp_path / "jobs.csv"
    sheet.write_text(f"study_uid,patient_id,accession_number\n{by_uid},,\n,CSV-PAT,CSV-ACC\n")
    result = retrieve_cli(ups_server_command, server, "--csv", str(sheet), "--wait")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any(by_uid in line and " done " in line and " VNA " in line for line in lines), result.stdout
    assert any(by_accession in line and " done " in line and " PACS " in line for line in lines), result.stdout
    assert any("patient CSV-PAT accession CSV-ACC" in line and " done " in line for line in lines), result.stdout

    queued = retrieve_cli(ups_server_command, server, "--study", by_uid)  # without --wait: the ids
    assert queued.returncode == 0 and queued.stdout.startswith("job ") and "queued" in queued.stdout
    refused = retrieve_cli(ups_server_command, server, "--study", "not-a-uid")
    assert refused.returncode == 2 and "not a Study Instance UID" in refused.stderr
