"""on_store through UPSService: listeners see "created" then "updated" (appends) inside the
store transaction; a claimed read is never changed by later instances."""

from __future__ import annotations

from .dicom_instances import instance, part10, uid
from .reading_flow import claim, read_uid, referenced_sops


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
