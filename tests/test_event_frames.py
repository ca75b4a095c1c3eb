"""The WebSocket text frame of an event (PS3.18 11.13, UPS-WS-03), put together from the Event
Information as PostgreSQL returns it as JSON text (``messages.WebSocketFrames``), holds the same
DICOM JSON as the message built as a dataset (``messages.websocket_message``): the N-EVENT-REPORT
fields and the Event Information, members in tag order."""

from __future__ import annotations

import json

from sqlalchemy import Text, cast, literal, select
from sqlalchemy.dialects.postgresql import JSONB

from ups_server.events import messages
from ups_server.events.messages import WebSocketFrames, websocket_message
from ups_server.ups import tags as t

PROGRESS = messages.progress_report("1.2.3", {t.PROCEDURE_STEP_PROGRESS_INFORMATION_SEQUENCE: {"vr": "SQ", "Value": [
    {t.PROCEDURE_STEP_PROGRESS: {"vr": "DS", "Value": [42.5]},
     t.PROCEDURE_STEP_PROGRESS_DESCRIPTION: {"vr": "ST", "Value": ["Lesen \u00e4 \u2028 \"q\""]}}]}}).info
CANCELED = messages.state_report("1.2.3", {t.PROCEDURE_STEP_STATE: {"vr": "CS", "Value": ["CANCELED"]}},
                                 "CANCELED").info


async def test_frames_hold_the_message_as_a_dataset(server):
    cases = [(1, "1.2.3", messages.state_report("1.2.3", {}, "IN PROGRESS").info),
             (2, "1.2.3", CANCELED), (3, "1.2.3.4", PROGRESS),
             (4, None, messages.scp_status("GOING DOWN").info), (5, "1.2.3", {})]
    frames = WebSocketFrames()
    async with server.database.engine.connect() as conn:
        for event_type, uid, info in cases:
            stored = (await conn.execute(select(cast(cast(literal(json.dumps(info)), JSONB), Text)))).scalar()
            for outbox_id in (1, 65534, 65535, 70000):  # Message IDs 2, 65535, 1, 4466
                text = frames.text(outbox_id, event_type, uid, stored)
                expected = websocket_message(outbox_id, event_type, uid, info)
                assert json.loads(text) == expected
                assert list(json.loads(text)) == list(expected)  # members in tag order
