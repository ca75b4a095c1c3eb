"""Studies under --auth oidc (QIDO-RS, WADO-RS, STOW-RS): storing needs the ingest role; readers
and arbitrators read only the studies of workitems they may see; ingest reads nothing."""

from __future__ import annotations

import pytest

from .access_support import as_, oidc_settings
from .dicom_instances import instance, multipart, part10, uid

RULES = """\
version: 1
on_store:
  - id: read
    when: [{attribute: Modality, equals: OT}]     # a CT study gets no workitem
    workitem: {uid: "1-{StudyInstanceUID}", group: read, label: Read, worklist_label: DOUBLE_READING}
"""


@pytest.fixture
def settings(settings, issuer, tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    return oidc_settings(settings, issuer, rules=rules)


async def stow(http, headers, study: str, modality: str = "OT"):
    body, ctype = multipart([part10(instance(study, modality=modality))])
    return await http.post("/studies", content=body, headers={"Content-Type": ctype, **headers})


def studies_of(r) -> set[str]:
    assert r.status_code == 200, r.text
    return {ds["0020000D"]["Value"][0] for ds in r.json()}


async def test_storing_needs_the_ingest_role(http, issuer):
    assert (await stow(http, as_(issuer, "reader-a"), uid())).status_code == 403
    assert (await stow(http, as_(issuer, "pacs"), uid())).status_code == 200


async def test_readers_read_the_studies_of_workitems_they_may_see(http, issuer):
    read, unread = uid(), uid()
    assert (await stow(http, as_(issuer, "pacs"), read)).status_code == 200
    assert (await stow(http, as_(issuer, "pacs"), unread, modality="CT")).status_code == 200

    reader = as_(issuer, "reader-a")
    assert studies_of(await http.get("/studies", headers=reader)) == {read}
    assert (await http.get(f"/studies/{read}/metadata", headers=reader)).status_code == 200
    assert (await http.get(f"/studies/{unread}/metadata", headers=reader)).status_code == 404
    assert (await http.get(f"/studies/{unread}/series", headers=reader)).status_code == 404
    assert (await http.get(f"/studies/{unread}", headers=reader)).status_code == 404

    assert studies_of(await http.get("/studies", headers=as_(issuer, "boss"))) == {read, unread}
    # ingest stores but reads nothing
    assert (await http.get("/studies", headers=as_(issuer, "pacs"))).status_code == 403
    assert (await http.get(f"/studies/{read}/metadata", headers=as_(issuer, "pacs"))).status_code == 403
    # another provider's reader (worklists claim) does not see this worklist's study
    other = as_(issuer, "reader-c", worklists=["NHS_OTHER"])
    assert studies_of(await http.get("/studies", headers=other)) == set()
    assert (await http.get(f"/studies/{read}/metadata", headers=other)).status_code == 404
