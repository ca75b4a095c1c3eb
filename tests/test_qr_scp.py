"""Query/Retrieve C-FIND of stored studies (real associations): the same keys give the same studies
as QIDO-RS (one matcher), and under --auth oidc an AE without a role is refused 0x0124 as QIDO-RS
refuses a request without one. DCMTK's findscu / movescu / getscu: conformance/test_query_retrieve.py."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from pydicom import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as STUDY_ROOT_FIND

from .dicom_instances import instance, uid
from .oidc_issuer import AUDIENCE

pytestmark = pytest.mark.dimse


def c_find(address, calling: str, **keys: str) -> tuple[int, list[Dataset]]:
    """(final status, the matches) of a Study Root C-FIND at STUDY level."""
    ae = AE(ae_title=calling)
    ae.add_requested_context(STUDY_ROOT_FIND)
    assoc = ae.associate(*address, ae_title="UPS_SERVER")
    assert assoc.is_established
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = ""
    for keyword, value in keys.items():
        setattr(query, keyword, value)
    found, final = [], None
    try:
        for status, identifier in assoc.send_c_find(query, STUDY_ROOT_FIND):
            if status.Status in (0xFF00, 0xFF01):
                found.append(identifier)
            else:
                final = int(status.Status)
    finally:
        assoc.release()
    return final, found


async def _store(server, **attrs) -> str:
    study = uid()
    await server.ingest.store(instance(study, **attrs))
    return study


@pytest.mark.parametrize("keys", [
    {"PatientID": "QR-PAT-*"}, {"AccessionNumber": "QR-ACC-2"}, {"StudyDate": "20261101-20261130"},
    {"PatientID": "QR-PAT-1", "StudyDate": "-20261110"}, {"ModalitiesInStudy": "MR"},
])
async def test_c_find_and_qido_find_the_same_studies(server, http, keys):
    await _store(server, patient_id="QR-PAT-1", accession="QR-ACC-1", StudyDate="20261105", modality="CT")
    await _store(server, patient_id="QR-PAT-2", accession="QR-ACC-2", StudyDate="20261120", modality="MR")
    await _store(server, patient_id="OTHER", accession="QR-ACC-3", StudyDate="20251231", modality="MR")
    status, found = await asyncio.to_thread(c_find, server.dimse.address, "READER", **keys)
    qido = (await http.get("/studies", params=keys)).json()
    assert status == 0x0000
    assert sorted(str(ds.StudyInstanceUID) for ds in found) == sorted(s["0020000D"]["Value"][0] for s in qido)
    assert found  # every case matches something


class TestUnderOidc:
    @pytest.fixture
    def settings(self, settings, issuer):
        return dataclasses.replace(settings, auth="oidc", oidc_issuer=issuer.url, oidc_audience=AUDIENCE,
                                   ae_roles={"READER": "reader"})

    async def test_an_ae_without_a_role_may_not_query(self, server):
        study = await _store(server)
        status, found = await asyncio.to_thread(c_find, server.dimse.address, "STRANGER", StudyInstanceUID=study)
        assert (status, found) == (0x0124, [])
        status, found = await asyncio.to_thread(c_find, server.dimse.address, "READER", StudyInstanceUID=study)
        assert status == 0x0000 and [str(ds.StudyInstanceUID) for ds in found] == [study]
