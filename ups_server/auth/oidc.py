"""OIDC bearer tokens: a JWT signed by the issuer, checked with the keys its discovery document names.

``{issuer}/.well-known/openid-configuration`` gives ``jwks_uri``; the key set is cached and fetched
again when a token names a ``kid`` the cache does not hold (the issuer rotated its keys). Checked:
the signature (RS256 or ES256 only, by joserfc), ``iss`` equal to the issuer, ``aud`` containing the
audience, ``exp`` / ``nbf`` / ``iat`` with a small leeway, and a ``sub``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from typing import TYPE_CHECKING, Any

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from .principal import Principal

if TYPE_CHECKING:
    from ..config import Settings

log = logging.getLogger(__name__)

ALGORITHMS = ["RS256", "ES256"]
LEEWAY_SECONDS = 60
# a kid that was still unknown after a fetch is not fetched for again for this long (a client
# sending made-up kids must not make the server hammer the issuer)
UNKNOWN_KID_RETRY_SECONDS = 30


class TokenError(Exception):
    """A token refused; ``error`` is the RFC 6750 error code (``invalid_token``, ``invalid_request``)."""

    def __init__(self, description: str, error: str = "invalid_token"):
        super().__init__(description)
        self.error = error
        self.description = description


class IssuerUnavailable(Exception):
    """The issuer's discovery document or key set could not be fetched."""


def token_header(token: str) -> dict[str, Any]:
    """The JOSE header of a compact JWS (parsed only: nothing is trusted from it but the kid)."""
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenError("the token is not a compact JWS (three dot-separated parts)")
    try:
        header = json.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
    except (ValueError, UnicodeDecodeError):
        raise TokenError("the token's header is not base64url JSON") from None
    if not isinstance(header, dict):
        raise TokenError("the token's header is not a JSON object")
    return header


def build_verifier(settings: Settings) -> OIDCVerifier | None:
    """The verifier of ``--auth oidc`` (None in open mode)."""
    if settings.auth != "oidc":
        return None
    assert settings.oidc_issuer and settings.oidc_audience  # Settings checked them
    return OIDCVerifier(settings.oidc_issuer, settings.oidc_audience, settings.oidc_roles_claim,
                        settings.oidc_worklists_claim)


class OIDCVerifier:
    """Verifies bearer tokens of one issuer for one audience and makes Principals of them."""

    def __init__(self, issuer: str, audience: str, roles_claim: str = "realm_access.roles",
                 worklists_claim: str = "worklists", *, leeway: int = LEEWAY_SECONDS, timeout: float = 10.0):
        self.issuer = issuer.rstrip("/")
        self.audience = audience
        self.roles_claim = roles_claim
        self.worklists_claim = worklists_claim
        self.leeway = leeway
        self.timeout = timeout
        self._keys: KeySet | None = None
        self._unknown: dict[str, float] = {}  # kid -> when it was last found missing after a fetch
        self._lock = asyncio.Lock()
        self.fetches = 0  # key set fetches so far (for logs and tests)

    async def principal(self, token: str) -> Principal:
        return Principal.from_claims(await self.claims(token), self.roles_claim, self.worklists_claim)

    async def claims(self, token: str) -> dict[str, Any]:
        """The verified claims of ``token``; TokenError when it is not acceptable."""
        header = token_header(token)
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise TokenError(f"algorithm {alg!r} is not accepted (only {', '.join(ALGORITHMS)})")
        key = await self._key(header.get("kid"), alg)
        try:
            decoded = jwt.decode(token, key, algorithms=ALGORITHMS)
        except JoseError as exc:
            raise TokenError(f"the token's signature does not verify ({exc.error})") from None
        except ValueError as exc:  # malformed base64 / JSON inside the token
            raise TokenError(f"the token is malformed: {exc}") from None
        claims = decoded.claims
        registry = jwt.JWTClaimsRegistry(
            leeway=self.leeway,
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": self.audience},
            exp={"essential": True},
            sub={"essential": True},
        )
        try:
            registry.validate(claims)
        except JoseError as exc:
            raise TokenError(_claim_problem(exc, claims, self)) from None
        return claims

    async def _key(self, kid: str | None, alg: str) -> Any:
        keys = self._keys or await self._refresh()
        found = _pick(keys, kid, alg)
        if found is None and kid is not None:
            missing_since = self._unknown.get(kid)
            if missing_since is None or time.monotonic() - missing_since > UNKNOWN_KID_RETRY_SECONDS:
                found = _pick(await self._refresh(stale=keys), kid, alg)
                if found is None:
                    self._unknown[kid] = time.monotonic()
        if found is None:
            raise TokenError(f"no key of the issuer has kid {kid!r}" if kid else
                             "the token names no kid and the issuer has several keys")
        return found

    async def _refresh(self, stale: KeySet | None = None) -> KeySet:
        """Fetch discovery + JWKS (once for concurrent callers: who waited gets the new set)."""
        async with self._lock:
            if self._keys is not None and self._keys is not stale:
                return self._keys
            try:
                async with httpx.AsyncClient(timeout=self.timeout) as client:
                    discovery = await _get_json(client, f"{self.issuer}/.well-known/openid-configuration")
                    jwks_uri = discovery.get("jwks_uri")
                    if not isinstance(jwks_uri, str):
                        raise IssuerUnavailable(f"{self.issuer}: the discovery document has no jwks_uri")
                    self._keys = KeySet.import_key_set(await _get_json(client, jwks_uri))
            except (httpx.HTTPError, ValueError) as exc:
                raise IssuerUnavailable(f"{self.issuer}: {exc}") from None
            self.fetches += 1
            log.info("fetched %d signing key(s) of %s", len(self._keys.keys), self.issuer)
            return self._keys


async def _get_json(client: httpx.AsyncClient, url: str) -> dict[str, Any]:
    response = await client.get(url)
    response.raise_for_status()
    value = response.json()
    if not isinstance(value, dict):
        raise IssuerUnavailable(f"{url} is not a JSON object")
    return value


def _pick(keys: KeySet, kid: str | None, alg: str) -> Any:
    kty = "RSA" if alg.startswith("RS") else "EC"
    candidates = [k for k in keys if k.key_type == kty and (kid is None or k.kid == kid)
                  and k.get("use") in (None, "sig")]
    return candidates[0] if len(candidates) == 1 or (candidates and kid) else None


def _claim_problem(exc: JoseError, claims: dict[str, Any], verifier: OIDCVerifier) -> str:
    claim = getattr(exc, "claim", None)
    if exc.error == "expired_token":
        return "the token has expired"
    if exc.error == "missing_claim":
        return f"the token lacks the {claim!r} claim"
    if claim == "iss":
        return f"the token's issuer {claims.get('iss')!r} is not {verifier.issuer!r}"
    if claim == "aud":
        return f"the token's audience {claims.get('aud')!r} does not include {verifier.audience!r}"
    if claim == "nbf":
        return "the token is not valid yet (nbf)"
    return f"the token's {claim!r} claim is not acceptable ({exc.description})"
