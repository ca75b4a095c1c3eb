"""DimseServer: the pynetdicom AE listening for C-ECHO, C-STORE and the UPS DIMSE services.

A server component (``start``/``stop``). pynetdicom runs each association in its own
thread; handlers reach the async services through ``self.bridge``. Other components may
use ``self.ae`` as an association requestor (e.g. for N-EVENT-REPORT).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from collections.abc import Callable
from typing import Any

from pynetdicom import AE, evt
from pynetdicom import _config as pynetdicom_config
from pynetdicom.events import Event
from pynetdicom.transport import ThreadedAssociationServer

from .. import logs
from ..auth.oidc import OIDCVerifier
from ..config import Settings
from ..services import Services
from .bridge import Bridge
from .contexts import add_requested_contexts, add_supported_contexts
from .reactor import install as install_quiet_reactor
from .store import handle_echo, make_store_handler

log = logging.getLogger(__name__)

MAX_ASSOCIATIONS = 64
QUIET_REACTOR = True  # False: pynetdicom's own 1 ms polling loop
UPS_CLASSES = "1.2.840.10008.5.1.4.34.6"  # UPS Push / Watch / Pull / Event / Query: the instance is a workitem


def on_connection(event: Event) -> None:
    """An accepted connection: TCP_NODELAY, and the quiet reactor (``reactor.py``)."""
    set_nodelay(event)
    if QUIET_REACTOR and not install_quiet_reactor(event.assoc):
        log.debug("pynetdicom internals differ: keeping its polling reactor")


def set_nodelay(event: Event) -> None:
    """TCP_NODELAY on every DIMSE connection: without it each response waits on a delayed ACK."""
    sock = getattr(event.assoc.dul.socket, "socket", None)
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:  # e.g. already closed by the peer
            log.debug("TCP_NODELAY not set: %s", exc)


def quiet_pynetdicom() -> None:
    """pynetdicom formats a log line for every PDU and DIMSE message and pretty-prints every
    C-FIND identifier even when nothing is logged: about a fifth of the CPU a C-FIND response
    costs. Off unless the server logs at DEBUG (process-wide pynetdicom settings)."""
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    pynetdicom_config.LOG_HANDLER_LEVEL = "none"
    pynetdicom_config.LOG_REQUEST_IDENTIFIERS = False
    pynetdicom_config.LOG_RESPONSE_IDENTIFIERS = False


class DimseServer:
    """The DIMSE front-end of the services."""

    def __init__(self, services: Services, settings: Settings, verifier: OIDCVerifier | None = None):
        self.services = services
        self.settings = settings
        self.verifier = verifier  # OIDC tokens in User Identity Negotiation (None: --auth none)
        self.ae = AE(ae_title=self.settings.ae_title)
        self.ae.maximum_associations = MAX_ASSOCIATIONS
        self.ae.network_timeout = 120
        add_supported_contexts(self.ae)
        add_requested_contexts(self.ae)
        self.allowed_aes = [a.strip() for a in self.settings.allowed_aes if a.strip()]
        self.ae.require_calling_aet = self.allowed_aes
        self.bridge: Bridge | None = None
        from .identity import AssociationIdentity

        self.identity = AssociationIdentity(self)
        self._listener: ThreadedAssociationServer | None = None
        self._tls_listener: ThreadedAssociationServer | None = None

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) the server listens on (the real port when 0 was asked for)."""
        if self._listener is None:
            raise RuntimeError("the DIMSE server is not started")
        return self._listener.server_address[:2]

    def handlers(self) -> list[tuple[Any, Any]]:
        from .find import make_find_handler
        from .qr import make_get_handler, make_move_handler
        from .ups import make_ups_handlers

        messages = [
            (evt.EVT_C_ECHO, handle_echo),
            (evt.EVT_C_STORE, make_store_handler(self)),
            (evt.EVT_C_FIND, make_find_handler(self)),
            (evt.EVT_C_MOVE, make_move_handler(self)),
            (evt.EVT_C_GET, make_get_handler(self)),
            *make_ups_handlers(self),
        ]
        return [
            (evt.EVT_CONN_OPEN, on_connection),
            (evt.EVT_REQUESTED, self._check_caller),
            (evt.EVT_USER_ID, self.identity.on_user_identity),
            *((event, self._in_log_context(handler)) for event, handler in messages),
        ]

    def _in_log_context(self, handler: Callable[[Event], Any]) -> Callable[[Event], Any]:
        """``handler`` with the message's log context: a request id, the calling AE, the principal,
        and the workitem UID of a UPS message."""

        def handle(event: Event) -> Any:
            request = event.request
            sop_class = str(getattr(request, "AffectedSOPClassUID", None) or
                            getattr(request, "RequestedSOPClassUID", None) or "")
            instance = (getattr(request, "AffectedSOPInstanceUID", None) or
                        getattr(request, "RequestedSOPInstanceUID", None))
            with logs.bound(request_id=uuid.uuid4().hex, calling_ae=event.assoc.requestor.ae_title.strip(),
                            state={"principal": self.identity.principal(event.assoc)},
                            workitem_uid=str(instance) if instance and sop_class.startswith(UPS_CLASSES) else None):
                return handler(event)

        return handle

    def _check_caller(self, event: Event) -> None:
        """Log why an unknown calling AE is about to be rejected (pynetdicom rejects it:
        result 1 permanent, source 1 service user, reason 3 calling AE title not recognised).
        Reject an AE that already holds ``max_associations_per_ae`` associations (result 2
        transient, source 3 service provider (presentation), reason 2 local limit exceeded)."""
        calling = event.assoc.requestor.primitive.calling_ae_title.strip()
        if self.allowed_aes and calling not in self.allowed_aes:
            log.warning("association from %s at %s rejected: calling AE title %r is not in allowed_aes",
                        calling, event.assoc.requestor.address, calling)
            return
        limit = self.settings.max_associations_per_ae
        held = [a for a in self.ae.active_associations
                if a is not event.assoc and a.is_acceptor and a.is_established and a.requestor.ae_title.strip() == calling]
        if limit and len(held) >= limit:
            log.warning("association from %s at %s rejected: it holds %d associations (max_associations_per_ae)",
                        calling, event.assoc.requestor.address, len(held))
            event.assoc.acse.send_reject(0x02, 0x03, 0x02)
            event.assoc.kill()  # as pynetdicom does after its own rejections: the A-ASSOCIATE-RJ goes out first

    async def start(self) -> None:
        self.bridge = Bridge(asyncio.get_running_loop())
        if self.settings.log_level.upper() != "DEBUG":
            quiet_pynetdicom()
        host = self.settings.host
        if self.settings.dimse_port:
            self._listener = self.ae.start_server(
                (host, int(self.settings.dimse_port)), block=False, evt_handlers=self.handlers())
            log.info("DIMSE %s listening on %s:%d", self.settings.ae_title, *self.address)
        if self.settings.dimse_tls_port:
            from ..auth.tls import server_context

            self._tls_listener = self.ae.start_server(
                (host, int(self.settings.dimse_tls_port)), block=False, evt_handlers=self.handlers(),
                ssl_context=server_context(self.settings))
            log.info("DIMSE %s listening with TLS on %s:%d%s", self.settings.ae_title,
                     *self._tls_listener.server_address[:2],
                     " (client certificates required)" if self.settings.tls_ca else "")

    async def stop(self) -> None:
        if self._listener is None and self._tls_listener is None:
            return
        # shutdown joins handler threads, which may be waiting on this loop: not on the loop thread
        await asyncio.to_thread(self.ae.shutdown)
        self._listener = self._tls_listener = None
