"""Two installed ``ups-server serve`` nodes on one PostgreSQL and one S3 bucket (moto's S3 server
on a loopback port), driven by tools nobody here wrote: Orthanc forwards a study by STOW-RS (its
DICOMweb plugin) to one node, dicomweb-client searches and retrieves it from the other; each node's
metrics show its part."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from dicomweb_client.api import DICOMwebClient
from pydicom import dcmread
from pydicom.uid import generate_uid

from tests.s3 import Bucket, moto_server, new_bucket

from .conftest import RunningServer
from .orthanc import DICOMWEB_PLUGIN, run_orthanc
from .orthanc import upload as upload_files
from .studies import write_study


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def nodes(moto, start_ups_server) -> tuple[RunningServer, RunningServer, Bucket]:
    """Node A (its embedded PostgreSQL is the shared database) and node B on A's database."""
    bucket = new_bucket(moto)
    a = start_ups_server("--blob-store", bucket.url, env=bucket.environ)
    shared = f"postgresql://postgres@/postgres?host={a.data_dir.resolve() / 'pgdata'}"
    b = start_ups_server("--blob-store", bucket.url, "--database-url", shared, "--no-migrate",
                         ae_title=a.ae_title, env=bucket.environ)
    return a, b, bucket


@pytest.mark.skipif(not DICOMWEB_PLUGIN.exists(), reason="Orthanc's DICOMweb plugin is not installed "
                                                          "(apt-get install orthanc-dicomweb)")
def test_orthanc_stores_on_one_node_dicomweb_client_retrieves_from_the_other(tmp_path: Path, nodes):
    a, b, bucket = nodes
    study = generate_uid()
    files = write_study(tmp_path / "study", study, count=3)
    with run_orthanc(tmp_path / "orthanc", "ORTHANC", {}, {"ups": [a.base_url + "/"]}) as orthanc:
        [study_id] = {answer["ParentStudy"] for answer in upload_files(orthanc.url, files)}
        r = httpx.post(f"{orthanc.url}/dicom-web/servers/ups/stow", json={"Resources": [study_id],
                                                                         "Synchronous": True}, timeout=60)
        assert r.status_code == 200, r.text
    assert len(bucket.keys()) == 3  # the instances are in the bucket, not on a node's disk

    client = DICOMwebClient(url=b.base_url)
    [found] = client.search_for_studies(search_filters={"StudyInstanceUID": study})  # QIDO-RS on B
    assert found["00201208"]["Value"] == [3]
    retrieved = {str(ds.SOPInstanceUID): ds for ds in client.retrieve_study(study)}  # WADO-RS on B
    for path in files:
        sent = dcmread(path)
        assert retrieved[str(sent.SOPInstanceUID)].PixelData == sent.PixelData

    on_a, on_b = (httpx.get(f"{node.root_url}/metrics", timeout=10).text for node in (a, b))
    assert 'ups_ingest_instances_total{outcome="stored"} 3.0' in on_a
    assert 'ups_ingest_instances_total{outcome="stored"}' not in on_b  # B stored nothing, served it all
    assert 'ups_http_requests_total{method="GET",route="/studies/{study}",status="200"} 1.0' in on_b
