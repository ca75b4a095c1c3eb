"""Studies sent by tools nobody here wrote: Orthanc (Debian's package) forwarding a study by
C-STORE and by STOW-RS (its DICOMweb plugin as the client), and dicomweb-client storing,
searching and retrieving. Each time the double-reading rules must give the two read workitems
(UIDs of DESIGN.md), referencing every instance."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from dicomweb_client.api import DICOMwebClient
from pydicom import dcmread
from pydicom.uid import generate_uid

from .conftest import RunningServer
from .orthanc import DICOMWEB_PLUGIN, run_orthanc
from .orthanc import upload as upload_files
from .studies import name_based_uid, write_study

JSON = {"Accept": "application/dicom+json"}


@pytest.fixture
def orthanc(tmp_path: Path, ups_server: RunningServer) -> Iterator[str]:
    """An Orthanc whose modality "ups" and DICOMweb server "ups" are the ups-server under test."""
    with run_orthanc(tmp_path / "orthanc", "ORTHANC", {"ups": [ups_server.ae_title, "127.0.0.1", ups_server.dimse_port]},
                     {"ups": [ups_server.base_url + "/"]}) as orthanc:
        yield orthanc.url


def upload(orthanc: str, files: list[Path]) -> str:
    """The files into Orthanc (REST); Orthanc's id of their study."""
    [study_id] = {answer["ParentStudy"] for answer in upload_files(orthanc, files)}
    return study_id


def referenced_sops(ds: Any) -> set[str]:
    """Every Referenced SOP Instance UID (0008,1155) anywhere in a DICOM JSON dataset."""
    found: set[str] = set()
    if isinstance(ds, dict):
        for tag, elem in ds.items():
            if tag == "00081155":
                found.update(elem.get("Value", []))
            elif isinstance(elem, dict) and elem.get("vr") == "SQ":
                for item in elem.get("Value", []):
                    found |= referenced_sops(item)
    return found


def assert_read_workitems(server: RunningServer, study: str, sops: set[str]) -> None:
    for n in (1, 2):
        r = httpx.get(f"{server.base_url}/workitems/{name_based_uid(f'{n}-{study}')}", headers=JSON, timeout=10)
        assert r.status_code == 200, f"read workitem {n}: {r.status_code} {r.text}\n{server.log()}"
        [ds] = r.json()
        assert ds["00741000"]["Value"] == ["SCHEDULED"]
        assert referenced_sops({"00404021": ds.get("00404021", {})}) == sops  # Input Information Sequence


@pytest.mark.parametrize("route", ["modalities/ups/store", "dicom-web/servers/ups/stow"],
                         ids=["C-STORE", "STOW-RS"])
def test_orthanc_forwards_a_study(tmp_path, ups_server, orthanc, route):
    if route.startswith("dicom-web") and not DICOMWEB_PLUGIN.exists():
        pytest.skip("Orthanc's DICOMweb plugin is not installed (apt-get install orthanc-dicomweb)")
    study = generate_uid()
    files = write_study(tmp_path / "study", study, count=3)
    study_id = upload(orthanc, files)
    r = httpx.post(f"{orthanc}/{route}", json={"Resources": [study_id], "Synchronous": True}, timeout=60)
    assert r.status_code == 200, r.text
    assert_read_workitems(ups_server, study, {str(dcmread(f).SOPInstanceUID) for f in files})


def test_dicomweb_client_stores_searches_and_retrieves(tmp_path, ups_server):
    study = generate_uid()
    datasets = [dcmread(f) for f in write_study(tmp_path / "study", study, count=2)]
    client = DICOMwebClient(url=ups_server.base_url)
    client.store_instances(datasets)  # STOW-RS
    [found] = client.search_for_studies(search_filters={"StudyInstanceUID": study})  # QIDO-RS
    assert found["0020000D"]["Value"] == [study]
    metadata = client.retrieve_study_metadata(study)  # WADO-RS
    assert {m["00080018"]["Value"][0] for m in metadata} == {str(d.SOPInstanceUID) for d in datasets}
    first = datasets[0]
    instance = client.retrieve_instance(study, str(first.SeriesInstanceUID), str(first.SOPInstanceUID))
    assert instance.SOPInstanceUID == first.SOPInstanceUID and instance.PixelData == first.PixelData
    assert_read_workitems(ups_server, study, {str(d.SOPInstanceUID) for d in datasets})
