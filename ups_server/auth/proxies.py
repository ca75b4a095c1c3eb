"""X-Forwarded-* only from trusted proxies.

A request from an address in ``--trusted-proxies`` keeps its ``X-Forwarded-*`` headers (which
make ``Location`` and the WebSocket URL name the host and scheme the client used) and its client
address becomes the last address in ``X-Forwarded-For`` that is not a trusted proxy. Any other
request has those headers removed, so a client cannot rewrite the URLs the server answers with.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable

from starlette.types import Scope

_FORWARDED = (b"forwarded", b"x-forwarded-")


class TrustedProxies:
    def __init__(self, trusted: Iterable[str]):
        self.networks = [ipaddress.ip_network(c, strict=False) for c in trusted]
        self.trusts = functools.lru_cache(maxsize=1024)(self._trusts)  # the same few clients ask again and again

    def _trusts(self, address: str | None) -> bool:
        if not address:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.networks if net.version == ip.version)

    def apply(self, scope: Scope) -> Scope:
        """The scope of an HTTP request or WebSocket as the routes see it (a copy when it changes)."""
        client = scope.get("client")
        if self.trusts(client[0] if client else None):
            forwarded_for = self._forwarded_for(scope)
            if forwarded_for:
                return {**scope, "client": (forwarded_for, 0)}
        elif any(k.startswith(_FORWARDED) for k, _ in scope["headers"]):
            return {**scope, "headers": [(k, v) for k, v in scope["headers"] if not k.startswith(_FORWARDED)]}
        return scope

    def _forwarded_for(self, scope: Scope) -> str | None:
        chain = [a.strip() for k, v in scope["headers"] if k == b"x-forwarded-for"
                 for a in v.decode("latin-1").split(",") if a.strip()]
        for address in reversed(chain):
            if not self.trusts(address):
                return address
        return chain[0] if chain else None
