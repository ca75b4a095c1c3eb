"""The principal of each HTTP request and WebSocket (RFC 6750 bearer tokens), for the front layer
(``web/front.py``).

Open mode (no verifier): every request has the OPEN principal. With a verifier: a request
without a token is 401 ``WWW-Authenticate: Bearer realm=...``; an unacceptable token 401 with
``error="invalid_token"``; a token granting none of the server's roles 403
``error="insufficient_scope"``. The paths in ``open_paths`` (``/health``) and under
``open_prefixes`` (the static reading page, which signs in itself) need no token.
A WebSocket takes the token from ``Authorization`` or the ``access_token`` query parameter.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl

from starlette.requests import HTTPConnection
from starlette.types import Receive, Scope, Send

from .oidc import IssuerUnavailable, OIDCVerifier, TokenError
from .principal import OPEN, ROLES, Principal

log = logging.getLogger(__name__)

REALM = "ups-server"
# called for every refused token (the audit): (scope, reason)
FailureHook = Callable[[Scope, str], Awaitable[None]]


def principal_of(connection: HTTPConnection | Scope) -> Principal:
    """The principal ``Authenticate`` set for this request (OPEN when none did)."""
    scope = connection.scope if isinstance(connection, HTTPConnection) else connection
    return scope.get("state", {}).get("principal", OPEN)


def client_address(connection: HTTPConnection | Scope) -> str | None:
    scope = connection.scope if isinstance(connection, HTTPConnection) else connection
    client = scope.get("client")
    return client[0] if client else None


def bearer_token(scope: Scope) -> str | None:
    """The token of ``Authorization: Bearer`` (or, for a WebSocket, ``?access_token=``).
    TokenError(invalid_request) for an Authorization header of another form."""
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").strip().partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise TokenError("the Authorization header is not 'Bearer <token>'", "invalid_request")
            return token.strip()
    if scope["type"] == "websocket":
        for key, value in parse_qsl(scope.get("query_string", b"").decode("latin-1")):
            if key == "access_token" and value:
                return value
    return None


class Authenticate:
    """Sets the principal of each HTTP request and WebSocket (``admit``), or answers the refusal."""

    def __init__(self, verifier: OIDCVerifier | None, *, open_paths: tuple[str, ...] = ("/health",),
                 open_prefixes: tuple[str, ...] = ("/ui/",), on_failure: FailureHook | None = None):
        self.verifier = verifier
        self.open_paths = open_paths
        self.open_prefixes = open_prefixes
        self.on_failure = on_failure

    async def admit(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """True with the principal in ``scope["state"]``; False once the refusal is sent."""
        state = scope.setdefault("state", {})
        address = client_address(scope)
        if self.verifier is None:
            state["principal"] = dataclasses.replace(OPEN, address=address)
            return True
        path = scope["path"]
        if path in self.open_paths or path.startswith(self.open_prefixes) or path + "/" in self.open_prefixes:
            state["principal"] = Principal(subject=None, address=address)
            return True
        try:
            token = bearer_token(scope)
            if token is None:
                await self._refuse(scope, receive, send, 401, None, "a bearer token is required")
                return False
            principal = await self.verifier.principal(token)
        except TokenError as exc:
            await self._refuse(scope, receive, send, 400 if exc.error == "invalid_request" else 401,
                               exc.error, exc.description)
            return False
        except IssuerUnavailable as exc:
            log.error("cannot check a token: %s", exc)
            await _deny(scope, receive, send, 503, {}, "the identity provider cannot be reached; retry later")
            return False
        if not principal.roles:
            await self._refuse(scope, receive, send, 403, "insufficient_scope",
                               f"the token grants none of the roles {', '.join(sorted(ROLES))}", principal)
            return False
        state["principal"] = dataclasses.replace(principal, address=address)
        return True

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, status: int, error: str | None,
                      description: str, principal: Principal | None = None) -> None:
        challenge = f'Bearer realm="{REALM}"'
        if error:
            challenge += f', error="{error}", error_description="{description.replace(chr(34), chr(39))}"'
        if self.on_failure is not None:
            try:
                await self.on_failure({**scope, "state": {"principal": principal or Principal(subject=None)}},
                                      description)
            except Exception:
                log.exception("recording an authentication failure failed")
        await _deny(scope, receive, send, status, {"www-authenticate": challenge}, description)


async def _deny(scope: Scope, receive: Receive, send: Send, status: int, headers: dict[str, str],
                message: str) -> None:
    body = json.dumps({"status": status, "message": message}).encode()
    raw: list[tuple[bytes, bytes]] = [(b"content-type", b"application/json"),
                                      (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode("latin-1", "replace")) for k, v in headers.items()]
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})
        return
    # WebSocket: answer the handshake with the status where the server supports it, else close
    if "websocket.http.response" in scope.get("extensions", {}):
        await send({"type": "websocket.http.response.start", "status": status, "headers": raw})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008, "reason": message[:120]})

