"""Event frames written to the WebSockets as bytes, encoded once per event (issue 12).

A server's WebSocket frames are not masked (RFC 6455 5.1), so the frame of an event is the same
bytes for every subscriber: ``text_frame`` encodes it once and the dispatcher writes those bytes
to each socket, instead of encoding it per subscriber through the ASGI send (Starlette, uvicorn,
websockets: most of the server's CPU per event with 1,000 subscribers).

``FrameWriting`` is uvicorn's WebSocket protocol with the ASGI extension ``WRITE_FRAME`` in the
connection's scope: a function writing one encoded frame now, or answering False when it cannot
(not open, closing, or the socket's write buffer above its high-water mark: backpressure, the
caller queues the event and sends it through the ASGI send once the socket drains). Under another
ASGI server the extension is absent and every event goes through the ASGI send.
"""

from __future__ import annotations

import struct

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State

WRITE_FRAME = "ups.websocket.write_frame"

_FIN_TEXT = 0x81  # FIN, opcode 1 (text)


def text_frame(text: str) -> bytes:
    """One unfragmented, unmasked text frame holding ``text`` (RFC 6455 5.2)."""
    payload = text.encode()
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", _FIN_TEXT, n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", _FIN_TEXT, 126, n)
    else:
        head = struct.pack("!BBQ", _FIN_TEXT, 127, n)
    return head + payload


class FrameWriting(WebSocketsSansIOProtocol):
    """uvicorn's ``websockets-sansio`` protocol offering ``WRITE_FRAME`` to the application."""

    def handle_connect(self, event) -> None:
        super().handle_connect(event)
        # the application runs later (a task): the scope it gets holds the extension
        if self.response.status_code == 101 and not self.conn.extensions:  # no permessage-deflate
            self.scope["extensions"][WRITE_FRAME] = self.write_frame

    def write_frame(self, frame: bytes) -> bool:
        """Write an encoded frame now; False when it cannot be written now."""
        if (not self.handshake_complete or self.close_sent or self.disconnected or not self.writable.is_set()
                or self.conn.state is not State.OPEN or self.transport.is_closing()):
            return False
        self.transport.write(frame)
        return True
