"""The subscription state table (PS3.4 Table CC.2.3-2) over UPS-RS, and the HTTP answers of
Subscribe / Unsubscribe / Suspend (PS3.18 11.10-11.12)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from ups_server.db.tables import event_outbox, global_subscriptions
from ups_server.ups.errors import Outcome, UPSError
from ups_server.ups.requests import UPSRequest

from .event_clients import EventSocket
from .events_support import (
    FILTERED,
    GLOBAL,
    cancel,
    claim,
    create,
    global_state,
    performers,
    subscribe,
    subscribed,
    uid,
    ws_url,
)
from .workitems import DICOM_JSON, new_workitem, performed_procedure, state_change

TXN = "1.2.826.0.1.3680043.10.5.999"


async def test_subscribe_answers_201_with_websocket_url_and_initial_state_report(http, server, base_url):
    # UPS-SUB-12, UPS-SUB-05, UPS-WS-05: open the WebSocket, subscribe, get the State Report
    await create(http, uid(1))
    async with EventSocket(ws_url(base_url, "SUB_A")) as ws:
        r = await subscribe(http, uid(1), "SUB_A", deletionlock="false")
        assert r.headers["content-location"] == ws_url(base_url, "SUB_A")
        ev = await ws.next_for(uid(1))
        assert ev.event_type == 1 and ev.state == "SCHEDULED"
        assert ev.info["00404041"]["Value"] == ["READY"]
        # UPS-SUB-04: subscribing again sends the initial event again
        await subscribe(http, uid(1), "SUB_A", deletionlock="true")
        ev = await ws.next_for(uid(1))
        assert ev.event_type == 1
    assert await subscribed(server, "SUB_A") == {uid(1): True}


async def test_content_location_carries_the_port_and_forwarded_host(http, base_url):
    # DESIGN "WebSocket URLs in Content-Location must carry the host and port the client used"
    await create(http, uid(2))
    r = await subscribe(http, uid(2), "SUB_B")
    port = base_url.split(":")[2].split("/")[0]
    assert r.headers["content-location"].startswith(f"ws://127.0.0.1:{port}/")
    r = await http.post(f"/workitems/{uid(2)}/subscribers/SUB_B",
                        headers={"X-Forwarded-Host": "ups.example.org:8443", "X-Forwarded-Proto": "https"})
    assert r.status_code == 201
    assert r.headers["content-location"] == "wss://ups.example.org:8443/dicom-web/subscribers/SUB_B"


async def test_unknown_workitem_is_404_and_changes_nothing(http, server):
    # UPS-SUB-09, UPS-SUB-13
    r = await http.post(f"/workitems/{uid(404)}/subscribers/SUB_C")
    assert r.status_code == 404
    assert "Warning" in r.headers
    assert await subscribed(server, "SUB_C") == {}
    r = await http.delete(f"/workitems/{uid(404)}/subscribers/SUB_C")
    assert r.status_code == 404


async def test_bad_requests_are_400(http):
    # UPS-SUB-12..14
    await create(http, uid(3))
    assert (await http.post(f"/workitems/{uid(3)}/subscribers/SUB_D?deletionlock=maybe")).status_code == 400
    assert (await http.post(f"/workitems/{uid(3)}/subscribers/{'X' * 17}")).status_code == 400
    assert (await http.post(f"/workitems/{FILTERED}/subscribers/SUB_D")).status_code == 400  # no filter
    assert (await http.post(f"/workitems/{uid(3)}/subscribers/SUB_D/suspend")).status_code == 400
    assert (await http.post(f"/workitems/{FILTERED}/subscribers/SUB_D?filter=NoSuchKeyword=1")).status_code == 400


async def test_global_with_lock_subscribes_existing_with_initial_events(http, server, base_url):
    # UPS-SUB-04 "Subscribe globally with lock", UPS-EVT-02
    await create(http, uid(10))
    await create(http, uid(11))
    await subscribe(http, uid(11), "SUB_E", deletionlock="false")  # already subscribed: unchanged
    async with EventSocket(ws_url(base_url, "SUB_E")) as ws:
        assert (await ws.next_for(uid(11))).event_type == 1  # the initial event of the specific subscribe
        await subscribe(http, GLOBAL, "SUB_E", deletionlock="true")
        ev = await ws.next()
        assert (ev.uid, ev.event_type, ev.state) == (uid(10), 1, "SCHEDULED")
    assert await subscribed(server, "SUB_E") == {uid(10): True, uid(11): False}
    assert await global_state(server, "SUB_E") == (True, False)


async def test_global_without_lock_sends_no_initial_events(http, server, base_url):
    # UPS-SUB-04 "Subscribe globally w/o lock": subscribed, no initial events
    await create(http, uid(20))
    async with EventSocket(ws_url(base_url, "SUB_F")) as ws:
        await subscribe(http, GLOBAL, "SUB_F", deletionlock="false")
        assert await subscribed(server, "SUB_F") == {uid(20): False}
        await claim(http, uid(20), TXN)  # the first event is the state change, not an initial report
        ev = await ws.next()
        assert (ev.uid, ev.state) == (uid(20), "IN PROGRESS")


async def test_created_workitems_are_subscribed_for_global_subscribers(http, server, base_url):
    # UPS-SUB-04 "UPS created", UPS-EVT-02: State Report (SCHEDULED) + UPS Assigned
    async with EventSocket(ws_url(base_url, "SUB_G")) as ws:
        await subscribe(http, GLOBAL, "SUB_G", deletionlock="true")
        await create(http, uid(30), **performers())
        first, second = await ws.next_for(uid(30)), await ws.next_for(uid(30))
        assert (first.event_type, first.state) == (1, "SCHEDULED")
        assert second.event_type == 5
        assert second.info["00404034"]["Value"][0]["00404037"]["Value"] == [{"Alphabetic": "Reader^One"}]
    assert await subscribed(server, "SUB_G") == {uid(30): True}


async def test_unsubscribe_specific_and_global(http, server):
    # UPS-SUB-02, UPS-SUB-13
    await create(http, uid(40))
    await create(http, uid(41))
    await subscribe(http, uid(40), "SUB_H", deletionlock="true")
    r = await http.delete(f"/workitems/{uid(40)}/subscribers/SUB_H")
    assert r.status_code == 200
    assert await subscribed(server, "SUB_H") == {}
    r = await http.delete(f"/workitems/{uid(40)}/subscribers/SUB_H")
    assert r.status_code == 404  # "subscription not found"
    await subscribe(http, GLOBAL, "SUB_H", deletionlock="true")
    await subscribe(http, uid(41), "SUB_H", deletionlock="false")
    assert set(await subscribed(server, "SUB_H")) == {uid(40), uid(41)}
    r = await http.delete(f"/workitems/{GLOBAL}/subscribers/SUB_H")
    assert r.status_code == 200
    assert await subscribed(server, "SUB_H") == {}
    assert await global_state(server, "SUB_H") is None


async def test_suspend_keeps_workitem_subscriptions_and_stops_auto_subscription(http, server):
    # UPS-SUB-03, UPS-SUB-14
    await create(http, uid(50))
    await subscribe(http, GLOBAL, "SUB_I", deletionlock="false")
    r = await http.post(f"/workitems/{GLOBAL}/subscribers/SUB_I/suspend")
    assert r.status_code == 200
    assert await global_state(server, "SUB_I") is None
    assert await subscribed(server, "SUB_I") == {uid(50): False}
    await create(http, uid(51))
    assert await subscribed(server, "SUB_I") == {uid(50): False}
    r = await http.post(f"/workitems/{GLOBAL}/subscribers/SUB_I/suspend")
    assert r.status_code == 404


async def test_filtered_global_subscription_follows_the_search_matcher(http, server):
    # UPS-SUB-08: existing and future workitems matching the keys
    await create(http, uid(60), **{"00741204": {"vr": "LO", "Value": ["Chest"]}})
    await create(http, uid(61), **{"00741204": {"vr": "LO", "Value": ["Head"]}})
    await subscribe(http, FILTERED, "SUB_J", deletionlock="false", filter="ProcedureStepLabel=Chest")
    assert await subscribed(server, "SUB_J") == {uid(60): False}
    assert await global_state(server, "SUB_J") == (False, True)
    await create(http, uid(62), **{"00741204": {"vr": "LO", "Value": ["Chest"]}})
    await create(http, uid(63), **{"00741204": {"vr": "LO", "Value": ["Foot"]}})
    assert set(await subscribed(server, "SUB_J")) == {uid(60), uid(62)}
    # two keys, as the PS3.18 filter=attr=value,attr=value form
    await subscribe(http, FILTERED, "SUB_K", filter="ProcedureStepLabel=Chest,PatientID=PAT-1")
    assert set(await subscribed(server, "SUB_K")) == {uid(60), uid(62)}


async def test_dimse_subscriber_without_channel_is_c308(server):
    # UPS-SUB-09: a Receiving AE that is not in ae_table and has no WebSocket
    await server.ups.create(UPSRequest.direct(uid(70), new_workitem()))
    with pytest.raises(UPSError) as err:
        await server.events.subscribe(uid(70), "NOWHERE", False)
    assert err.value.outcome is Outcome.UNKNOWN_RECEIVING_AE
    with pytest.raises(UPSError) as err:
        await server.events.subscribe(uid(404), "NOWHERE", False, via_http=True)
    assert err.value.outcome is Outcome.NO_SUCH_UPS
    with pytest.raises(UPSError) as err:
        await server.events.suspend_global(uid(70), "NOWHERE")
    assert err.value.outcome is Outcome.ACTION_NOT_APPROPRIATE


async def test_deletion_lock_holds_a_completed_workitem_until_unsubscribed(http, server):
    # UPS-SUB-10, UPS-SUB-11, UPS-STATE-17: purge skips locked workitems
    server.events.housekeeper.completed_after = 0
    await create(http, uid(80))
    await subscribe(http, uid(80), "SUB_L", deletionlock="true")
    await claim(http, uid(80), TXN)
    r = await http.post(f"/workitems/{uid(80)}?transaction-uid={TXN}", json=performed_procedure(),
                        headers=DICOM_JSON)
    assert r.status_code == 200
    r = await http.put(f"/workitems/{uid(80)}/state", json=state_change("COMPLETED", TXN), headers=DICOM_JSON)
    assert r.status_code == 200
    assert await server.events.housekeeper.run_once() == []
    assert (await http.get(f"/workitems/{uid(80)}")).status_code == 200
    await subscribe(http, uid(80), "SUB_L", deletionlock="false")  # re-subscribe w/o lock releases it
    assert await server.events.housekeeper.run_once() == [uid(80)]
    assert (await http.get(f"/workitems/{uid(80)}")).status_code in (404, 410)


async def test_canceled_workitem_purged_and_outbox_pruned(http, server):
    # dcm4chee §4.6: final workitems without a deletion lock are deleted after their delay
    # (purge_canceled_after); outbox rows older than event_replay_seconds are pruned
    housekeeper = server.events.housekeeper
    await create(http, uid(90))
    await subscribe(http, uid(90), "SUB_M", deletionlock="false")
    await cancel(http, uid(90), "DESK")
    assert await housekeeper.run_once() == []  # default -1: never purged
    housekeeper.canceled_after = 0
    assert await housekeeper.run_once() == [uid(90)]
    assert await subscribed(server, "SUB_M") == {}
    async with server.database.engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(event_outbox))).scalar() == 3
    housekeeper.replay_seconds = 0
    await housekeeper.run_once()
    async with server.database.engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(event_outbox))).scalar() == 0


async def test_filter_is_stored_parsed_once_whatever_form_it_came_in(http, server):
    # UPS-SUB-08: the HTTP filter parameter and the N-ACTION Matching Keys give the same stored keys
    await subscribe(http, FILTERED, "SUB_N1", filter="ProcedureStepLabel=Chest")
    await server.events.subscribe(FILTERED, "SUB_N2", False, {"00741204": {"vr": "LO", "Value": ["Chest"]}},
                                  via_http=True)
    async with server.database.engine.connect() as conn:
        stored = dict((await conn.execute(select(global_subscriptions.c.aet, global_subscriptions.c.filter)
                                           .where(global_subscriptions.c.aet.in_(["SUB_N1", "SUB_N2"])))).all())
    assert stored["SUB_N1"] == stored["SUB_N2"] == {
        "keys": [{"tag": "00741204", "vr": "LO", "values": ["Chest"], "item": None}]}


async def test_many_filtered_subscribers_each_get_what_matches(http, server):
    # one query evaluates every filter of a new workitem (UPS-SUB-08)
    labels = ["Chest", "Head", "Foot"]
    for label in labels:
        await subscribe(http, FILTERED, f"SUB_{label.upper()}", filter=f"ProcedureStepLabel={label}")
    await subscribe(http, GLOBAL, "SUB_ALL")
    await create(http, uid(90), **{"00741204": {"vr": "LO", "Value": ["Head"]}})
    assert set(await subscribed(server, "SUB_HEAD")) == {uid(90)}
    assert await subscribed(server, "SUB_CHEST") == {} and await subscribed(server, "SUB_FOOT") == {}
    assert set(await subscribed(server, "SUB_ALL")) == {uid(90)}
