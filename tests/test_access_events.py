"""Subscriptions and the event WebSocket under --auth oidc: the WebSocket needs the token (header or
access_token); a subscriber AE title belongs to the user who first subscribed it, and only that
user and admins manage its subscriptions or open its WebSocket."""

from __future__ import annotations

from urllib.parse import quote

import pytest
import websockets

from ups_server.dicom.uids import GLOBAL_SUBSCRIPTION

from .access_support import as_, oidc_settings
from .event_clients import EventSocket


@pytest.fixture
def settings(settings, issuer):
    return oidc_settings(settings, issuer)


def ws_url(base_url: str, aet: str, token_header: dict[str, str] | None = None) -> str:
    url = base_url.replace("http://", "ws://") + f"/subscribers/{aet}"
    if token_header:
        url += "?access_token=" + quote(token_header["Authorization"].split(" ", 1)[1])
    return url


async def test_only_the_owner_and_admins_manage_a_subscriber(http, issuer):
    a, b, boss = as_(issuer, "reader-a"), as_(issuer, "reader-b"), as_(issuer, "boss")
    r = await http.post(f"/workitems/{GLOBAL_SUBSCRIPTION}/subscribers/UI_A", headers=a)
    assert r.status_code == 201, r.text
    for method, path in (("POST", f"/workitems/{GLOBAL_SUBSCRIPTION}/subscribers/UI_A"),
                         ("DELETE", f"/workitems/{GLOBAL_SUBSCRIPTION}/subscribers/UI_A"),
                         ("POST", f"/workitems/{GLOBAL_SUBSCRIPTION}/subscribers/UI_A/suspend")):
        r = await http.request(method, path, headers=b)
        assert r.status_code == 403, (method, path, r.text)
    r = await http.delete(f"/workitems/{GLOBAL_SUBSCRIPTION}/subscribers/UI_A", headers=boss)
    assert r.status_code == 200, r.text  # an admin manages any AE's subscriptions
    r = await http.get(http.base_url.copy_with(path="/admin/audit"), params={"workitem": GLOBAL_SUBSCRIPTION},
                       headers=boss)
    assert [(row["what"], row["subject"], row["address"]) for row in r.json()] == [
        ("subscribe UI_A", "reader-a", "127.0.0.1"), ("unsubscribe UI_A", "boss", "127.0.0.1")]


async def test_the_websocket_needs_the_token_of_its_owner(http, base_url, issuer):
    a, b = as_(issuer, "reader-a"), as_(issuer, "reader-b")
    assert (await http.post(f"/workitems/{GLOBAL_SUBSCRIPTION}/subscribers/UI_A2", headers=a)).status_code == 201
    with pytest.raises(websockets.exceptions.InvalidHandshake):
        async with EventSocket(ws_url(base_url, "UI_A2")):
            pass
    with pytest.raises(websockets.exceptions.InvalidHandshake):
        async with EventSocket(ws_url(base_url, "UI_A2", b)):
            pass
    async with EventSocket(ws_url(base_url, "UI_A2", a)) as ws:
        assert not ws.closed.is_set()


async def test_events_only_of_workitems_the_subscriber_may_see(http, base_url, issuer):
    a, b, boss = as_(issuer, "reader-a"), as_(issuer, "reader-b"), as_(issuer, "boss")
    for aet, who in (("EV_A", a), ("EV_B", b)):
        r = await http.post(f"/workitems/{GLOBAL_SUBSCRIPTION}/subscribers/{aet}", headers=who)
        assert r.status_code == 201, r.text
    async with EventSocket(ws_url(base_url, "EV_A", a)) as ws_a, EventSocket(ws_url(base_url, "EV_B", b)) as ws_b:
        await _b_claims_what_a_then_stops_seeing(http, ws_a, ws_b, b, boss)


async def test_subscribing_to_a_workitem_one_may_not_see_is_not_found(http, issuer):
    from ups_server.dicom.uids import new_uid

    from .workitems import DICOM_JSON, new_workitem, state_change

    a, b, boss = as_(issuer, "reader-a"), as_(issuer, "reader-b"), as_(issuer, "boss")
    claimed, unknown = new_uid(), new_uid()
    r = await http.post(f"/workitems?workitem={claimed}", json=new_workitem(), headers={**DICOM_JSON, **boss})
    assert r.status_code == 201, r.text
    r = await http.post(f"/workitems/{claimed}/subscribers/SUB_A", headers=a)
    assert r.status_code == 201, r.text  # SCHEDULED and claimable: A sees it
    r = await http.put(f"/workitems/{claimed}/state", json=state_change("IN PROGRESS", new_uid()),
                       headers={**DICOM_JSON, **b})
    assert r.status_code == 200, r.text
    r = await http.post(f"/workitems/{claimed}/subscribers/SUB_A", headers=a)
    assert r.status_code == 404, r.text  # B's claim: not there for A, as for an unknown workitem
    assert (await http.post(f"/workitems/{unknown}/subscribers/SUB_A", headers=a)).status_code == 404
    assert (await http.post(f"/workitems/{claimed}/subscribers/SUB_B", headers=b)).status_code == 201


async def test_dimse_events_only_of_workitems_the_subscriber_may_see(http, issuer, settings, server):
    """The same filter over N-EVENT-REPORT: each AE's events are for its owner's eyes (its roles as it
    subscribed), and an AE without owner sees what --ae-roles gives it (here nothing)."""
    from .event_clients import EventReceiver

    a, b, boss = as_(issuer, "reader-a"), as_(issuer, "reader-b"), as_(issuer, "boss")
    with EventReceiver("DV_A") as rx_a, EventReceiver("DV_B") as rx_b, EventReceiver("DV_NONE") as rx_none:
        settings.ae_table = {"DV_A": rx_a.address, "DV_B": rx_b.address, "DV_NONE": rx_none.address}
        for aet, who in (("DV_A", a), ("DV_B", b)):
            r = await http.post(f"/workitems/{GLOBAL_SUBSCRIPTION}/subscribers/{aet}", headers=who)
            assert r.status_code == 201, r.text
        r = await http.post(f"/workitems/{GLOBAL_SUBSCRIPTION}/subscribers/DV_NONE", headers=boss)
        assert r.status_code == 201, r.text  # subscribed by an admin: no owner, no --ae-roles entry
        await _b_claims_what_a_then_stops_seeing(http, rx_a, rx_b, b, boss)
        await _dimse_done(server, "DV_NONE")
    assert rx_none.events.empty()  # no role: none of the events was for its eyes


async def _b_claims_what_a_then_stops_seeing(http, events_a, events_b, b, boss) -> None:
    """The visibility flow, whatever carries the events (WebSocket or N-EVENT-REPORT): a workitem both
    readers may claim is told to both; B's claim of it is told to B only; A's next event is the
    next workitem created."""
    from ups_server.dicom.uids import new_uid

    from .workitems import DICOM_JSON, new_workitem, state_change

    first, second = new_uid(), new_uid()
    r = await http.post(f"/workitems?workitem={first}", json=new_workitem(), headers={**DICOM_JSON, **boss})
    assert r.status_code == 201
    assert (await events_a.next_for(first)).state == "SCHEDULED"  # both may claim it: both are told
    assert (await events_b.next_for(first)).state == "SCHEDULED"
    r = await http.put(f"/workitems/{first}/state", json=state_change("IN PROGRESS", new_uid()),
                       headers={**DICOM_JSON, **b})
    assert r.status_code == 200, r.text
    assert (await events_b.next_for(first)).state == "IN PROGRESS"  # B's own claim
    r = await http.post(f"/workitems?workitem={second}", json=new_workitem(), headers={**DICOM_JSON, **boss})
    assert r.status_code == 201
    ev = await events_a.next()  # A's next event is the second workitem: B's claim was not sent to A
    assert (ev.uid, ev.state) == (second, "SCHEDULED")


async def _dimse_done(server, aet: str) -> None:
    """Until the outbox has no N-EVENT-REPORT to ``aet`` pending (sent or dropped)."""
    import asyncio

    from sqlalchemy import func, select

    from ups_server.db.tables import event_outbox

    async with server.database.engine.connect() as conn:
        while True:
            total, pending = (await conn.execute(select(func.count(), func.count().filter(
                event_outbox.c.dimse_pending)).where(event_outbox.c.aet == aet))).one()
            await conn.commit()
            if total and not pending:
                return
            await asyncio.sleep(0.05)
