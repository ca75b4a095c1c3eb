"""The dcm4chee wiki set-up (rules/dcm4chee-double-reading.yaml): pre-assigned readers
RADIOLOGIST_1 / RADIOLOGIST_2, performer-only claims, arbitration always, COPY_INPUT."""

from __future__ import annotations

import pytest

from ups_server.paths import rules_dir

from .dicom_instances import instance, part10, uid
from .reading_flow import claim, read, read_uid, referenced_sops, stow, study_workitems, workitem
from .workitems import DICOM_JSON


@pytest.fixture
def settings(settings, request, tmp_path):
    """The shipped dcm4chee rules; with param "performer_only" the option turned on."""
    text = (rules_dir() / "dcm4chee-double-reading.yaml").read_text()
    if getattr(request, "param", None) == "performer_only":
        text = text.replace("performer_only: false", "performer_only: true")
    settings.rules = tmp_path / "dcm4chee.yaml"
    settings.rules.write_text(text)
    return settings


def _performer(ds) -> str:
    return ds["00404034"]["Value"][0]["00404009"]["Value"][0]["00080100"]["Value"][0]


async def test_wiki_flow_one_upsscu_reads_both_and_arbitration_always(http, server):
    """As in dcm4chee, who claims is not checked and the reads are pre-assigned, so the set has
    distinct_readers: false: the wiki's verification, one upsscu (default AE UPSSCU) claiming and
    completing both reads, ends with the arbitration workitem (issue 10: it was refused 0x0124)."""
    study = uid()
    await stow(http, [part10(instance(study))])
    r, txn2 = await claim(http, read_uid(2, study), "UPSSCU")  # upsscu's default calling AE
    assert r.status_code == 200, r.text
    r, txn1 = await claim(http, read_uid(1, study), "UPSSCU")
    assert r.status_code == 200, r.text
    from .reading_flow import complete

    assert (await complete(http, read_uid(1, study), txn1, "NORMAL")).status_code == 200
    assert await workitem(http, read_uid(3, study)) is None
    assert (await complete(http, read_uid(2, study), txn2, "NORMAL")).status_code == 200
    assert await workitem(http, read_uid(3, study)) is not None


@pytest.mark.parametrize("settings", ["performer_only"], indirect=True)
async def test_preassigned_reads_and_arbitration_always(http, server):
    study = uid()
    inst = instance(study, accession="ACC-42")
    await stow(http, [part10(inst)])
    r1, r2 = read_uid(1, study), read_uid(2, study)
    one, two = await workitem(http, r1), await workitem(http, r2)
    assert _performer(one) == "RADIOLOGIST_1" and _performer(two) == "RADIOLOGIST_2"
    code = one["00404018"]["Value"][0]
    assert (code["00080100"]["Value"], code["00080102"]["Value"]) == (["DOUBLE_READING"], ["99DCM4CHEE"])
    assert one["0020000D"]["Value"] == [study]  # IncludeStudyInstanceUID
    request = one["0040A370"]["Value"][0]  # IncludeReferencedRequest
    assert request["0020000D"]["Value"] == [study] and request["00080050"]["Value"] == ["ACC-42"]
    assert one["00100020"]["Value"] == ["PAT-1"]  # IncludePatient

    # only the scheduled performer may claim a pre-assigned read
    r, _ = await claim(http, r1, "RADIOLOGIST_2")
    assert r.status_code == 403, r.text
    # claim-next honours it: RADIOLOGIST_2 gets its own read, not the first one
    r = await http.post("/workitems/claim?requester=RADIOLOGIST_2", headers=DICOM_JSON)
    assert r.status_code == 200, r.text
    assert r.json()[0]["00080018"]["Value"] == [r2]
    r = await http.post("/workitems/claim?requester=RADIOLOGIST_2", headers=DICOM_JSON)
    assert r.status_code == 204  # nothing left for RADIOLOGIST_2
    txn2 = r2 and await server.ups.transaction_uid_of(r2)

    from .reading_flow import complete

    await read(http, r1, "RADIOLOGIST_1", "NORMAL")
    assert await workitem(http, read_uid(3, study)) is None
    r = await complete(http, r2, txn2, "NORMAL")  # the reads agree: arbitration anyway (always)
    assert r.status_code == 200, r.text
    arb = await workitem(http, read_uid(3, study))
    assert arb is not None
    assert referenced_sops(arb) == [inst.SOPInstanceUID]
    assert arb["0040A370"]["Value"][0]["0020000D"]["Value"] == [study]
    assert len(await study_workitems(server, study)) == 3
