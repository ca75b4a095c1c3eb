"""Double reading end to end over STOW-RS and UPS-RS with the bundled rules (pool reading,
distinct readers, arbitration when the reads disagree)."""

from __future__ import annotations

from .dicom_instances import instance, part10, uid
from .reading_flow import claim, read, read_uid, referenced_sops, stow, study_workitems, workitem

VECTOR = ("1-1.2.3.4", "2.25.237997061136468279839587818681855387213")


def test_name_based_uid_vector():
    from ups_server.dicom.uids import name_based_uid

    assert name_based_uid(VECTOR[0]) == VECTOR[1]


async def test_two_reads_distinct_readers_and_arbitration_on_disagreement(http, server):
    study = uid()
    a, b = instance(study), instance(study)
    await stow(http, [part10(a)])
    await stow(http, [part10(b)])  # a later instance is appended to both reads

    r1, r2 = read_uid(1, study), read_uid(2, study)
    for wi in (r1, r2):
        ds = await workitem(http, wi)
        assert ds["00741000"]["Value"] == ["SCHEDULED"]
        assert sorted(referenced_sops(ds)) == sorted([a.SOPInstanceUID, b.SOPInstanceUID])
        assert ds["0020000D"]["Value"] == [study]
        retrieval = ds["00404021"]["Value"][0]
        assert retrieval["0040E021"]["Value"][0]["00080054"]["Value"] == ["UPS_SERVER"]
        assert retrieval["0040E025"]["Value"][0]["00081190"]["Value"][0].startswith(str(http.base_url).rstrip("/"))
    rows = await study_workitems(server, study)
    assert sorted((r["uid"], r["read_group"]) for r in rows) == sorted([(r1, "read"), (r2, "read")])

    # reader A takes the first read; A may not take the second
    r, _ = await claim(http, r1, "READER_A")
    assert r.status_code == 200, r.text
    r, _ = await claim(http, r2, "READER_A")
    assert r.status_code == 409 and "another read" in r.headers.get("warning", "")
    assert (await workitem(http, r2))["00741000"]["Value"] == ["SCHEDULED"]

    # reader A reads NORMAL (its claim above), reader B reads RECALL: they disagree
    from .reading_flow import complete

    await read(http, r2, "READER_B", "RECALL")
    assert await workitem(http, read_uid(3, study)) is None  # one read is still IN PROGRESS
    rows = await study_workitems(server, study)
    txn_a = await server.ups.transaction_uid_of(r1)
    r = await complete(http, r1, txn_a, "NORMAL")
    assert r.status_code == 200, r.text

    arb = await workitem(http, read_uid(3, study))
    assert arb is not None and arb["00741000"]["Value"] == ["SCHEDULED"]
    assert sorted(referenced_sops(arb)) == sorted([a.SOPInstanceUID, b.SOPInstanceUID])  # copy_input
    assert arb["00741200"]["Value"] == ["HIGH"]
    rows = await study_workitems(server, study)
    assert len(rows) == 3 and {r["read_group"] for r in rows} == {"read", "arbitration"}

    # the arbitration's own completion triggers nothing; a reader of the study may arbitrate
    await read(http, read_uid(3, study), "READER_A", "RECALL")
    assert len(await study_workitems(server, study)) == 3

    # instances arriving after the reads were claimed change nothing
    await stow(http, [part10(instance(study))])
    assert len(referenced_sops(await workitem(http, r1))) == 2


async def test_agreeing_reads_create_no_arbitration(http, server):
    study = uid()
    await stow(http, [part10(instance(study))])
    await read(http, read_uid(1, study), "READER_A", "NORMAL")
    await read(http, read_uid(2, study), "READER_B", "NORMAL")
    assert await workitem(http, read_uid(3, study)) is None
    assert len(await study_workitems(server, study)) == 2


async def test_structured_reports_do_not_create_reads(http, server):
    study = uid()
    sr = instance(study, SOPClassUID="1.2.840.10008.5.1.4.1.1.88.11")
    sr.file_meta.MediaStorageSOPClassUID = sr.SOPClassUID
    await stow(http, [part10(sr)])
    assert await study_workitems(server, study) == []
