"""TLS for HTTPS (uvicorn) and DIMSE (pynetdicom), after the BCP 195 profile of PS3.15 B.9:
TLS 1.2 or later, forward-secret AEAD cipher suites only."""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import Settings

# TLS 1.2 suites of BCP 195 (RFC 9325 4.2); TLS 1.3 suites are all acceptable and not set here
CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20"


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """uvicorn.Config keywords for HTTPS (empty without --tls-cert)."""
    if not settings.tls_cert:
        return {}
    return {"ssl_certfile": str(settings.tls_cert), "ssl_keyfile": str(settings.tls_key),
            "ssl_ciphers": CIPHERS, "ssl_version": ssl.PROTOCOL_TLS_SERVER}


def server_context(settings: Settings) -> ssl.SSLContext:
    """The DIMSE TLS server context: the HTTPS certificate; with --tls-ca, a client certificate
    signed by that CA is required."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(CIPHERS)
    context.load_cert_chain(str(settings.tls_cert), str(settings.tls_key))
    if settings.tls_ca:
        context.load_verify_locations(cafile=str(settings.tls_ca))
        context.verify_mode = ssl.CERT_REQUIRED
    return context
