"""Claim-next runs as one statement that also writes the listeners' rows (ups.service ClaimHook): a
claim by claim-next leaves what a claim by name (Change State, whose listeners run in its transaction)
leaves: the same event outbox rows for the workitem's subscribers (DIMSE and WebSocket), a NOTIFY, the
same audit row, one more claim counted."""

from __future__ import annotations

import asyncio
import dataclasses

import asyncpg
from sqlalchemy import func, select

from ups_server import metrics
from ups_server.auth.principal import OPEN
from ups_server.db.engine import asyncpg_dsn
from ups_server.db.tables import audit_events, event_outbox
from ups_server.dicom.uids import new_uid
from ups_server.events import outbox
from ups_server.server import Server
from ups_server.ups.requests import UPSRequest

from .events_support import uid
from .workitems import el, new_workitem

AUDITED = [audit_events.c.event_id, audit_events.c.event, audit_events.c.action, audit_events.c.what,
           audit_events.c.outcome, audit_events.c.subject, audit_events.c.display_name, audit_events.c.ae_title,
           audit_events.c.address, audit_events.c.study_uid, audit_events.c.detail]


async def _last_outbox_id(server: Server) -> int:
    async with server.database.engine.connect() as conn:
        return (await conn.execute(select(func.coalesce(func.max(event_outbox.c.id), 0)))).scalar_one()


async def _effects(server: Server, workitem: str, after: int = 0) -> tuple[list[tuple], list[tuple]]:
    """(outbox rows after the row ``after``: the WebSocket subscribers' row, then the DIMSE AEs'; audit
    rows) of ``workitem``, in the order written."""
    async with server.database.engine.connect() as conn:
        outbox = [tuple(r) for r in await conn.execute(
            select(event_outbox.c.aet, event_outbox.c.event_type, event_outbox.c.info, event_outbox.c.dimse_pending,
                   event_outbox.c.ws_aets)
            .where(event_outbox.c.workitem_uid == workitem, event_outbox.c.id > after)
            .order_by(event_outbox.c.aet.nulls_first(), event_outbox.c.id))]
        audit = [tuple(r) for r in await conn.execute(
            select(*AUDITED).where(audit_events.c.workitem_uid == workitem).order_by(audit_events.c.id))]
    return outbox, audit


async def test_claim_next_writes_what_a_claim_by_name_writes(settings):
    # no network parts: nothing delivers (and so changes) the outbox rows while the test reads them
    settings = dataclasses.replace(settings, ae_table={"DIMSE_RCV": "127.0.0.1:9"})
    server = Server(settings, network=False)
    await server.open()
    listener = await asyncpg.connect(asyncpg_dsn(server.database.engine.url))
    notified: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener("ups_events", lambda _conn, _pid, _channel, payload: notified.put_nowait(payload))
    try:
        ups, study = server.ups, "1.2.826.0.1.3680043.10.5.7001"
        by_name, by_next = uid(7010), uid(7011)
        for workitem in (by_name, by_next):  # not READY: the event carries the row's readiness
            await ups.create(UPSRequest.direct(workitem, new_workitem(**{
                "00404041": el("CS", "INCOMPLETE"), "0020000D": el("UI", study)})))
            for aet, via_http in (("WS_B", True), ("DIMSE_RCV", False), ("WS_A", True)):
                await server.events.subscribe(workitem, aet, False, via_http=via_http)
        await ups.create(UPSRequest.direct(uid(7012), new_workitem(**{"00741200": el("CS", "LOW")})))
        claims, subscribed = metrics.CLAIMS._value.get(), await _last_outbox_id(server)  # after the initial reports

        await ups.change_state(dataclasses.replace(
            UPSRequest.state_change(by_name, "IN PROGRESS", new_uid(), requester="READER_1"), principal=OPEN))
        result = await ups.claim_next(UPSRequest(requester="READER_1", principal=OPEN))

        assert result is not None and result.uid == by_next  # MEDIUM before LOW
        assert result.dataset["00741000"]["Value"] == ["IN PROGRESS"]
        named_outbox, named_audit = await _effects(server, by_name, subscribed)
        next_outbox, next_audit = await _effects(server, by_next, subscribed)
        report = {"00741000": el("CS", "IN PROGRESS"), "00404041": el("CS", "INCOMPLETE")}  # a State Report
        assert named_outbox == [(None, 1, report, False, ["DIMSE_RCV", "WS_A", "WS_B"]),
                                ("DIMSE_RCV", 1, report, True, [])]
        assert next_outbox == named_outbox
        assert [row[3] for row in named_audit] == ["claim"]
        assert next_audit == named_audit
        assert named_audit[0][9] == study
        assert metrics.CLAIMS._value.get() == claims + 2
        for workitem in (by_name, by_next):  # each claim's NOTIFY names its WebSocket row
            async with server.database.engine.connect() as conn:
                ws_row = (await conn.execute(select(event_outbox.c.id).where(
                    event_outbox.c.workitem_uid == workitem, event_outbox.c.aet.is_(None),
                    event_outbox.c.id > subscribed))).scalar_one()
            while outbox.notified_ids(await asyncio.wait_for(notified.get(), 10)) != (ws_row, ws_row):
                pass
    finally:
        await listener.close()
        await server.close()
        await server.database.dispose()


async def test_claim_next_audits_each_claimant_though_they_share_one_statement(settings):
    """The statement is kept per claim scope, not per principal: the audit row still names the
    principal (subject, address) and the requester of each claim; a claim the server makes itself
    (no principal) writes none."""
    server = Server(settings, network=False)
    await server.open()
    try:
        for n in (7020, 7021, 7022):
            await server.ups.create(UPSRequest.direct(uid(n), new_workitem()))
        claims = [("READER_2", dataclasses.replace(OPEN, address="127.0.0.2")),
                  ("READER_3", dataclasses.replace(OPEN, subject="someone", address="127.0.0.3")), ("READER_4", None)]
        claimed = [await server.ups.claim_next(UPSRequest(requester=requester, principal=principal))
                   for requester, principal in claims]
        assert [r.uid for r in claimed if r is not None] == [uid(7020), uid(7021), uid(7022)]
        audited = [[(row[3], row[5], row[7], row[8]) for row in (await _effects(server, uid(n)))[1]]
                   for n in (7020, 7021, 7022)]
        assert audited == [[("claim", None, "READER_2", "127.0.0.2")], [("claim", "someone", "READER_3", "127.0.0.3")],
                           []]
        outbox, _ = await _effects(server, uid(7020))
        assert outbox == []  # no subscriber
        assert await server.ups.claim_next(UPSRequest(requester="READER_2", principal=OPEN)) is None
    finally:
        await server.close()
        await server.database.dispose()
