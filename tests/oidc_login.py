"""Browser sign-in at the test issuer (tests/oidc_issuer.py): an authorization endpoint with a
login form and a token endpoint for the authorization code flow with PKCE (RFC 7636, S256) and
refresh tokens, for a public client; CORS open, as an identity provider configured for a SPA."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
from typing import Any
from urllib.parse import parse_qs, urlencode

from .oidc_issuer import Issuer

CLIENT_ID = "reading-page"


class Login:
    """Attach to an Issuer: ``issuer.login = Login(issuer, {"anna": ("reader",)})``."""

    def __init__(self, issuer: Issuer, users: dict[str, tuple[str, ...]], expires_in: int = 300):
        self.issuer = issuer
        self.users = users
        self.expires_in = expires_in
        self.codes: dict[str, dict[str, str]] = {}
        self.refresh_tokens: dict[str, str] = {}
        self.grants: list[str] = []  # grant types served, in order

    def discovery(self) -> dict[str, Any]:
        return {"authorization_endpoint": f"{self.issuer.url}/auth", "token_endpoint": f"{self.issuer.url}/token",
                "code_challenge_methods_supported": ["S256"], "grant_types_supported":
                ["authorization_code", "refresh_token"], "response_types_supported": ["code"]}

    def handle(self, request: Any, path: str) -> None:
        route, _, query = path.partition("?")
        if route == "/auth" and request.command == "GET":
            self._login_form(request, parse_qs(query))
        elif route == "/auth" and request.command == "POST":
            self._authorize(request, self._form(request))
        elif route == "/token" and request.command == "POST":
            self._token(request, self._form(request))
        else:
            request.send_error(404)

    @staticmethod
    def _form(request: Any) -> dict[str, list[str]]:
        length = int(request.headers.get("Content-Length") or 0)
        return parse_qs(request.rfile.read(length).decode())

    def _login_form(self, request: Any, params: dict[str, list[str]]) -> None:
        if params.get("client_id") != [CLIENT_ID] or params.get("code_challenge_method") != ["S256"]:
            request.send_error(400, "unknown client or no S256 code challenge")
            return
        hidden = "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v[0])}">'
                         for k, v in params.items())
        page = (f'<!doctype html><title>Test issuer</title><form method="post" action="{self.issuer.url}/auth">'
                f'{hidden}<label>Username <input name="username"></label><button>Log in</button></form>')
        self._send(request, 200, page.encode(), "text/html; charset=utf-8")

    def _authorize(self, request: Any, form: dict[str, list[str]]) -> None:
        one = {k: v[0] for k, v in form.items()}
        if one.get("username") not in self.users:
            request.send_error(403, "unknown user")
            return
        code = secrets.token_urlsafe(16)
        self.codes[code] = one
        target = f"{one['redirect_uri']}?{urlencode({'code': code, 'state': one['state']})}"
        request.send_response(302)
        request.send_header("Location", target)
        request.send_header("Content-Length", "0")
        request.end_headers()

    def _token(self, request: Any, form: dict[str, list[str]]) -> None:
        one = {k: v[0] for k, v in form.items()}
        grant = one.get("grant_type")
        if grant == "authorization_code":
            asked = self.codes.pop(one.get("code", ""), None)
            verifier = one.get("code_verifier", "").encode()
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier).digest()).rstrip(b"=").decode()
            if (asked is None or asked["code_challenge"] != challenge or asked["redirect_uri"] != one.get("redirect_uri")
                    or one.get("client_id") != CLIENT_ID):
                self._send(request, 400, b'{"error": "invalid_grant"}', "application/json")
                return
            user = asked["username"]
        elif grant == "refresh_token" and one.get("refresh_token") in self.refresh_tokens:
            user = self.refresh_tokens.pop(one["refresh_token"])
        else:
            self._send(request, 400, b'{"error": "invalid_grant"}', "application/json")
            return
        self.grants.append(grant)
        refresh = secrets.token_urlsafe(16)
        self.refresh_tokens[refresh] = user
        token = self.issuer.token(user, self.users[user])
        body = {"access_token": token, "id_token": token, "token_type": "Bearer", "expires_in": self.expires_in,
                "refresh_token": refresh}
        self._send(request, 200, json.dumps(body).encode(), "application/json")

    @staticmethod
    def _send(request: Any, status: int, body: bytes, kind: str) -> None:
        request.send_response(status)
        request.send_header("Content-Type", kind)
        request.send_header("Content-Length", str(len(body)))
        request.send_header("Access-Control-Allow-Origin", "*")
        request.send_header("Cache-Control", "no-store")
        request.end_headers()
        request.wfile.write(body)
