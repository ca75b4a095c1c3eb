"""Every event trigger (UPS-EVT-01..07, UPS-SET-12) over both channels: the WebSocket of an
HTTP subscriber (UPS-WS-02/03) and N-EVENT-REPORT to a DIMSE subscriber in ae_table; plus
cross-protocol (UPS-WS-06) and rule-path changes (dcm4chee #2852 / #4411)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from pynetdicom.sop_class import UnifiedProcedureStepWatch

from ups_server.ups.requests import UPSRequest

from .dimse_client import UPSClient
from .event_clients import UPS_PUSH, EventReceiver, EventSocket, Received
from .events_support import (
    FILTERED,
    GLOBAL,
    cancel,
    claim,
    create,
    performers,
    progress,
    subscribe,
    uid,
    update,
    ws_url,
)
from .workitems import el, new_workitem

TXN = "1.2.826.0.1.3680043.10.5.998"
DIMSE_AET = "DIMSE_SUB"
WS_AET = "WS_SUB"


@pytest.fixture
def receiver():
    with EventReceiver(DIMSE_AET) as r:
        yield r


pytestmark = pytest.mark.dimse


@pytest.fixture
def settings(settings, receiver):
    settings.ae_table = {DIMSE_AET: receiver.address}
    return settings


def dimse_client(server, calling: str = "TEST_SCU") -> UPSClient:
    host, port = server.dimse.address
    return UPSClient(host, port, calling_ae=calling)


def _subscribe_over_dimse(server, target: str, aet: str, lock: bool) -> int:
    info = {"00741234": el("AE", aet), "00741230": el("LO", "TRUE" if lock else "FALSE")}
    with dimse_client(server) as scu:
        return scu.action(target, 3, info, sop_class=UnifiedProcedureStepWatch).status


class Channel:
    """An event subscriber as the tests use it, over one of the two channels."""

    def __init__(self, kind: str, http, server, base_url: str, receiver: EventReceiver):
        self.kind, self.http, self.server, self.base_url, self.receiver = kind, http, server, base_url, receiver
        self.aet = WS_AET if kind == "websocket" else DIMSE_AET
        self.ws: EventSocket | None = None

    async def subscribe(self, target: str, lock: bool = False) -> None:
        if self.kind == "websocket":
            await subscribe(self.http, target, self.aet, deletionlock=str(lock).lower())
        else:  # N-ACTION Subscribe (type 3) on the DIMSE server
            status = await asyncio.to_thread(_subscribe_over_dimse, self.server, target, self.aet, lock)
            assert status == 0x0000

    async def next_for(self, workitem: str) -> Received:
        ev = await (self.ws.next_for(workitem) if self.ws else self.receiver.next_for(workitem))
        assert ev.sop_class == UPS_PUSH  # UPS-EVT-01, UPS-WS-03
        assert ev.message_id is not None
        return ev


@pytest.fixture(params=["websocket", "dimse"])
async def channel(request, http, server, base_url, receiver) -> AsyncIterator[Channel]:
    ch = Channel(request.param, http, server, base_url, receiver)
    async with contextlib.AsyncExitStack() as stack:
        if ch.kind == "websocket":
            ch.ws = await stack.enter_async_context(EventSocket(ws_url(base_url, WS_AET)))
        yield ch


async def _subscribed(channel: Channel, workitem: str, **overrides) -> None:
    await create(channel.http, workitem, **overrides)
    await channel.subscribe(workitem)
    ev = await channel.next_for(workitem)  # UPS-SUB-05 initial State Report
    assert (ev.event_type, ev.state) == (1, "SCHEDULED")


async def test_state_changes_give_state_reports(channel, http):
    # UPS-EVT-02 "every Procedure Step State change"
    await _subscribed(channel, uid(100))
    await claim(http, uid(100), TXN)
    ev = await channel.next_for(uid(100))
    assert (ev.event_type, ev.state) == (1, "IN PROGRESS")
    assert ev.info["00404041"]["Value"] == ["READY"]


async def test_input_readiness_change_gives_state_report(channel, http):
    # UPS-SET-12, UPS-EVT-02 "every Input Readiness State change"
    await _subscribed(channel, uid(101))
    await update(http, uid(101), {"00404041": el("CS", "UNAVAILABLE")})
    ev = await channel.next_for(uid(101))
    assert (ev.event_type, ev.state) == (1, "SCHEDULED")
    assert ev.info["00404041"]["Value"] == ["UNAVAILABLE"]


async def test_progress_update_gives_progress_report(channel, http):
    # UPS-SET-12: Procedure Step Progress / Description -> UPS Progress Report
    await _subscribed(channel, uid(102))
    await claim(http, uid(102), TXN)
    assert (await channel.next_for(uid(102))).state == "IN PROGRESS"
    await update(http, uid(102), progress("50", "half way"), txn=TXN)
    ev = await channel.next_for(uid(102))
    assert ev.event_type == 3
    item = ev.info["00741002"]["Value"][0]
    assert float(item["00741004"]["Value"][0]) == 50
    assert item["00741006"]["Value"] == ["half way"]


async def test_performer_assignment_gives_ups_assigned(channel, http):
    # UPS-SET-12: Scheduled Human Performers changed -> UPS Assigned
    await _subscribed(channel, uid(103))
    await update(http, uid(103), performers("Reader^Two", "R2"))
    ev = await channel.next_for(uid(103))
    assert ev.event_type == 5
    performer = ev.info["00404034"]["Value"][0]
    assert performer["00404009"]["Value"][0]["00080100"]["Value"] == ["R2"]
    assert ev.info["00404036"]["Value"] == ["Radiology"]


async def test_cancel_request_in_progress_gives_cancel_requested(channel, http):
    # UPS-CANCEL-03: Requesting AE (0074,1236) plus reason and contact from the request
    await _subscribed(channel, uid(104))
    await claim(http, uid(104), TXN)
    assert (await channel.next_for(uid(104))).state == "IN PROGRESS"
    info = {"00741238": el("LT", "patient left"), "0074100A": el("UR", "tel:+15551234"),
            "0074100C": el("LO", "Front desk")}
    await cancel(http, uid(104), "FRONT_DESK", info)
    ev = await channel.next_for(uid(104))
    assert ev.event_type == 2
    assert ev.info["00741236"]["Value"] == ["FRONT_DESK"]
    assert ev.info["00741238"]["Value"] == ["patient left"]
    assert ev.info["0074100A"]["Value"] == ["tel:+15551234"]
    assert ev.info["0074100C"]["Value"] == ["Front desk"]


async def test_cancel_of_scheduled_gives_two_state_reports_in_order(channel, http):
    # UPS-CANCEL-02, UPS-EVT-07: IN PROGRESS then CANCELED
    await _subscribed(channel, uid(105))
    await cancel(http, uid(105), "FRONT_DESK", {"00741238": el("LT", "duplicate order")})
    first, second = await channel.next_for(uid(105)), await channel.next_for(uid(105))
    assert (first.event_type, first.state) == (1, "IN PROGRESS")
    assert (second.event_type, second.state) == (1, "CANCELED")
    assert second.info["00741238"]["Value"] == ["duplicate order"]
    assert second.info["0074100E"]["Value"]  # Discontinuation Reason Code


async def test_creation_reports_to_global_subscribers(channel, http):
    # UPS-EVT-02 "UPS creation -> State Report (SCHEDULED) + Assigned (if populated)"
    await channel.subscribe(GLOBAL, lock=True)
    await create(http, uid(106), **performers())
    first, second = await channel.next_for(uid(106)), await channel.next_for(uid(106))
    assert (first.event_type, first.state) == (1, "SCHEDULED")
    assert second.event_type == 5


async def test_rule_path_changes_give_events(channel, server):
    # dcm4chee #2852 / #4411: workitems created and amended by rules (UPSService.create_in /
    # amend_in inside the rule's transaction) report events like UPS-RS ones
    await channel.subscribe(GLOBAL, lock=False)
    async with server.database.engine.begin() as conn:
        await server.ups.create_in(conn, uid(107), new_workitem(), if_absent=True)
    ev = await channel.next_for(uid(107))
    assert (ev.event_type, ev.state) == (1, "SCHEDULED")

    def make_unavailable(ds):
        ds["00404041"] = el("CS", "INCOMPLETE")
        return ds

    async with server.database.engine.begin() as conn:
        await server.ups.amend_in(conn, uid(107), make_unavailable)
    ev = await channel.next_for(uid(107))
    assert ev.info["00404041"]["Value"] == ["INCOMPLETE"]


async def test_dimse_change_reaches_websocket(http, server, base_url):
    # UPS-WS-06: a change made with a DIMSE N-ACTION reaches the HTTP subscriber's WebSocket
    await create(http, uid(110))
    async with EventSocket(ws_url(base_url, WS_AET)) as ws:
        await subscribe(http, uid(110), WS_AET)
        assert (await ws.next_for(uid(110))).state == "SCHEDULED"

        def claim_over_dimse() -> int:
            with dimse_client(server, "DIMSE_PERFORMER") as scu:
                return scu.action(uid(110), 1, {"00741000": el("CS", "IN PROGRESS"),
                                                "00081195": el("UI", TXN)}).status

        assert await asyncio.to_thread(claim_over_dimse) == 0x0000
        ev = await ws.next_for(uid(110))
        assert (ev.event_type, ev.state) == (1, "IN PROGRESS")


async def test_http_change_reaches_dimse_subscriber(http, server, receiver):
    # UPS-WS-06 the other way: UPS-RS change -> N-EVENT-REPORT (UPS Event context, Push class)
    await create(http, uid(111))
    status = await asyncio.to_thread(_subscribe_over_dimse, server, uid(111), DIMSE_AET, False)
    assert status == 0x0000
    assert (await receiver.next_for(uid(111))).state == "SCHEDULED"
    await claim(http, uid(111), TXN)
    ev = await receiver.next_for(uid(111))
    assert (ev.event_type, ev.state, ev.sop_class) == (1, "IN PROGRESS", UPS_PUSH)


async def test_unknown_receiving_ae_over_dimse_is_c308(server):
    # UPS-SUB-09: N-ACTION Subscribe for an AE with no channel
    await server.ups.create(UPSRequest.direct(uid(112), new_workitem()))
    status = await asyncio.to_thread(_subscribe_over_dimse, server, uid(112), "NOWHERE", False)
    assert status == 0xC308


async def test_filtered_global_subscription_over_dimse(http, server, receiver):
    # UPS-SUB-01/08: N-ACTION Subscribe on 1.2.840.10008.5.1.4.34.5.1 with Matching Keys
    await create(http, uid(120), **{"00741204": el("LO", "Chest")})
    await create(http, uid(121), **{"00741204": el("LO", "Head")})
    info = {"00741234": el("AE", DIMSE_AET), "00741230": el("LO", "TRUE"), "00741204": el("LO", "Chest")}

    def filtered_subscribe() -> int:
        with dimse_client(server) as scu:
            return scu.action(FILTERED, 3, info, sop_class=UnifiedProcedureStepWatch).status

    assert await asyncio.to_thread(filtered_subscribe) == 0x0000
    ev = await receiver.next()  # global with lock: initial State Report of the one match
    assert (ev.uid, ev.event_type) == (uid(120), 1)
    await create(http, uid(122), **{"00741204": el("LO", "Head")})
    await create(http, uid(123), **{"00741204": el("LO", "Chest")})
    ev = await receiver.next()  # the new matching workitem, not the Head one
    assert (ev.uid, ev.event_type, ev.state) == (uid(123), 1, "SCHEDULED")
