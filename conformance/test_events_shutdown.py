"""Black box: a WebSocket subscriber of the real ``ups-server serve`` hears the SCP Status Change
GOING DOWN (UPS-EVT-04) when the server is stopped with SIGTERM, before its connection closes."""

from __future__ import annotations

import json
import signal

import httpx
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from .conftest import RunningServer

GLOBAL = "1.2.840.10008.5.1.4.34.5"
EVENT_TYPE_ID, SCP_STATUS = "00001002", "00741242"
SCP_STATUS_CHANGE = 4  # UPS Event Type ID (PS3.4 Table CC.2.4-1)


def test_websocket_subscriber_hears_going_down(ups_server: RunningServer):
    r = httpx.post(f"{ups_server.base_url}/workitems/{GLOBAL}/subscribers/WATCHER", timeout=10)
    assert r.status_code == 201, r.text  # UPS-SUB-01
    events = []
    with connect(r.headers["content-location"], open_timeout=10) as ws:
        ups_server.process.send_signal(signal.SIGTERM)
        try:
            while True:
                events.append(json.loads(ws.recv(timeout=15)))
        except ConnectionClosed:
            pass
    statuses = [e[SCP_STATUS]["Value"][0] for e in events if e[EVENT_TYPE_ID]["Value"] == [SCP_STATUS_CHANGE]]
    assert statuses == ["GOING DOWN"]  # once: at-least-once delivery, but no duplicate from one process
    assert ups_server.stop() in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it has stopped
