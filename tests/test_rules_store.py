"""on_store through UPSService: listeners see "created" then "updated" (appends) inside the
store transaction; a claimed read is never changed by later instances."""

from __future__ import annotations

import copy

from ups_server.rules.templates import add_reference

from .dicom_instances import instance, part10, uid
from .reading_flow import claim, read_uid, referenced_sops

MODIFIED = "00404010"  # Scheduled Procedure Step Modification DateTime


async def test_listeners_see_created_then_updated(http, server):
    seen: list[tuple[str, str]] = []

    async def listener(conn, change):
        seen.append((change.kind, change.uid))

    server.ups.add_listener(listener)
    study = uid()
    await server.ingest.store(part10(instance(study)))
    await server.ingest.store(part10(instance(study)))
    r1, r2 = read_uid(1, study), read_uid(2, study)
    assert seen == [("created", r1), ("created", r2), ("updated", r1), ("updated", r2)]

    r, _ = await claim(http, r1, "READER_A")
    assert r.status_code == 200
    seen.clear()
    late = instance(study)
    await server.ingest.store(part10(late))
    assert seen == [("updated", r2)]  # the claimed read is left as it was
    assert late.SOPInstanceUID not in referenced_sops(await server.ups.retrieve(r1))
    assert late.SOPInstanceUID in referenced_sops(await server.ups.retrieve(r2))


async def test_restore_of_same_instance_runs_no_rule(server):
    seen: list[str] = []

    async def listener(conn, change):
        seen.append(change.kind)

    study = uid()
    data = part10(instance(study))
    await server.ingest.store(data)
    server.ups.add_listener(listener)
    again = await server.ingest.store(data)
    assert again.already_present and seen == []


async def test_appended_references_are_those_the_rules_templates_write(server):
    """Later instances are appended by one SQL statement: the read's dataset is exactly what
    ``add_reference`` makes of it in Python (one item per series, references in store order),
    with a new modification time; two series in one batch; an instance the read already
    references is not referenced twice."""
    study, a, b = uid(), uid(), uid()
    await server.ingest.store(part10(instance(study, a)))
    r1, r2 = read_uid(1, study), read_uid(2, study)
    before = {r: await server.ups.retrieve(r) for r in (r1, r2)}
    known = instance(study, b)  # r2 references it before it is stored
    rules = server.services.rules
    async with server.database.engine.begin() as conn:
        await server.ups.amend_in(conn, r2, lambda ds: ds if add_reference(
            ds, study, b, known.SOPClassUID, known.SOPInstanceUID, rules.retrieve_ae, rules.retrieve_url) else None)
    before[r2] = await server.ups.retrieve(r2)
    later = [instance(study, a), instance(study, b), known, instance(study, b)]
    results = await server.ingest.store_many([part10(ds) for ds in later])  # one transaction
    assert [r.stored and r.rule_failures for r in results] == [0, 0, 0, 0]
    for r in (r1, r2):
        expected = copy.deepcopy(before[r])
        for ds in later:
            add_reference(expected, study, ds.SeriesInstanceUID, ds.SOPClassUID, ds.SOPInstanceUID,
                          rules.retrieve_ae, rules.retrieve_url)
        after = await server.ups.retrieve(r)
        assert after.pop(MODIFIED) != expected.pop(MODIFIED)
        assert after == expected
    assert referenced_sops(await server.ups.retrieve(r2)).count(known.SOPInstanceUID) == 1
