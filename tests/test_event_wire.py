"""An event's WebSocket frame encoded once as bytes (``events.wire.text_frame``) is the frame the
`websockets` library builds for a server's text message (RFC 6455 5.2: unmasked, one final frame)
at each payload length form (7-bit up to 125 bytes, 16-bit up to 65,535, 64-bit beyond), and a
client reads it back as that text."""

from __future__ import annotations

import pytest
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

from ups_server.events.wire import text_frame

TEXTS = ["", "{}", "x" * 125, "x" * 126, "x" * 65535, "x" * 65536, "x" * 300_000, '{"a":"Lesen \u00e4 \u2028 \\"q\\""}']


@pytest.mark.parametrize("text", TEXTS, ids=[str(len(t.encode())) for t in TEXTS])
def test_text_frame_is_the_frame_of_a_server_text_message(text):
    server = ServerProtocol(state=State.OPEN, max_size=None)
    server.send_text(text.encode())
    assert text_frame(text) == b"".join(server.data_to_send())
    assert text_frame(text) == Frame(Opcode.TEXT, text.encode()).serialize(mask=False)
    client = ClientProtocol(parse_uri("ws://127.0.0.1/subscribers/AE"), state=State.OPEN, max_size=None)
    client.receive_data(text_frame(text))
    [frame] = client.events_received()
    assert (frame.opcode, frame.fin, frame.data.decode()) == (Opcode.TEXT, True, text)
