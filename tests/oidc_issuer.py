"""A small OIDC issuer on loopback for the tests: discovery document and JWKS over real HTTP,
for keys the test generates; ``token()`` signs JWTs the way an identity provider does."""

from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey

AUDIENCE = "ups-server"
REALM = "/realms/test"


class Issuer:
    def __init__(self) -> None:
        self.keys: list[Any] = [RSAKey.generate_key(2048, parameters={"kid": "rsa-1", "use": "sig"}),
                                ECKey.generate_key("P-256", parameters={"kid": "ec-1", "use": "sig"})]
        self.requests: list[str] = []
        self.login: Any = None  # tests/oidc_login.Login: the browser sign-in endpoints, when attached
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                issuer.requests.append(self.path)
                path = self.path.removeprefix(REALM)  # the realm path is part of the issuer, as in Keycloak
                if path == "/.well-known/openid-configuration":
                    body = {"issuer": issuer.url, "jwks_uri": f"{issuer.url}/jwks",
                            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
                            **(issuer.login.discovery() if issuer.login else {})}
                elif path == "/jwks":
                    body = KeySet(issuer.keys).as_dict(private=False)
                elif issuer.login is not None:
                    issuer.login.handle(self, path)
                    return
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Access-Control-Allow-Origin", "*")  # the reading page reads it too
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                issuer.requests.append(self.path)
                if issuer.login is None:
                    self.send_error(404)
                    return
                issuer.login.handle(self, self.path.removeprefix(REALM))

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}{REALM}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def rotate(self) -> str:
        """Publish a new RSA key (kid rsa-<n>) and return its kid."""
        kid = f"rsa-{len(self.keys) + 1}"
        self.keys.append(RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig"}))
        return kid

    def claims(self, sub: str, roles: tuple[str, ...] = ("reader",), **extra: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {"iss": self.url, "aud": [AUDIENCE, "account"], "sub": sub, "iat": now, "exp": now + 300,
                  "preferred_username": sub and sub.lower(), "realm_access": {"roles": list(roles)}}
        claims.update(extra)
        return {k: v for k, v in claims.items() if v is not None}

    def token(self, sub: str = "reader-1", roles: tuple[str, ...] = ("reader",), *, kid: str = "rsa-1",
              key: Any = None, **extra: Any) -> str:
        """A signed JWT; ``kid``/``key`` choose the signing key (``key``: one not published)."""
        key = key or next(k for k in self.keys if k.kid == kid)
        alg = "ES256" if key.key_type == "EC" else "RS256"
        return jwt.encode({"alg": alg, "kid": key.kid, "typ": "JWT"}, self.claims(sub, roles, **extra), key)


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def unsigned_token(claims: dict[str, Any]) -> str:
    """``alg: none``: a JWT without a signature."""
    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."


def tampered(token: str, **changes: Any) -> str:
    """``token`` with its payload changed and its signature kept."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    return f"{header}.{b64(claims)}.{signature}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
