"""--auth oidc over real HTTP: bearer tokens of a real issuer on loopback (discovery + JWKS).

RFC 6750 section 3: no token -> 401 with a bare Bearer challenge; an unacceptable token -> 401
error="invalid_token"; a token without any of the server's roles -> 403 error="insufficient_scope";
a malformed Authorization header -> 400 error="invalid_request". /health needs no token.
"""

from __future__ import annotations

import dataclasses
import time

import pytest
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey

from ups_server.auth.oidc import OIDCVerifier, TokenError
from ups_server.auth.principal import Principal

from .oidc_issuer import AUDIENCE, bearer, tampered, unsigned_token


@pytest.fixture
def settings(settings, issuer):
    return dataclasses.replace(settings, auth="oidc", oidc_issuer=issuer.url, oidc_audience=AUDIENCE)


def challenge(r) -> str:
    return r.headers.get("www-authenticate", "")


async def test_a_valid_token_is_accepted(http, issuer):
    r = await http.get("/workitems", headers=bearer(issuer.token()))
    assert r.status_code == 204, r.text  # searched: nothing matches
    r = await http.get("/workitems", headers=bearer(issuer.token(kid="ec-1")))  # ES256
    assert r.status_code == 204, r.text


async def test_no_token_is_401_with_a_bearer_challenge(http, base_url):
    r = await http.get("/workitems")
    assert r.status_code == 401
    assert challenge(r) == 'Bearer realm="ups-server"'  # RFC 6750 3.1: no error code without credentials


async def test_health_needs_no_token(http, base_url):
    r = await http.get(base_url.rsplit("/", 1)[0] + "/health")
    assert r.status_code == 200


@pytest.mark.filterwarnings("ignore::joserfc.errors.SecurityWarning")  # the HS256 forgery builds such a key
@pytest.mark.parametrize("case", ["expired", "wrong audience", "wrong issuer", "unknown kid", "alg none",
                                  "tampered payload", "HS256 with the public key", "not yet valid",
                                  "no sub", "garbage"])
async def test_an_unacceptable_token_is_401_invalid_token(http, issuer, case):
    now = int(time.time())
    token = {
        "expired": lambda: issuer.token(exp=now - 3600, iat=now - 7200),
        "wrong audience": lambda: issuer.token(aud="another-service"),
        "wrong issuer": lambda: issuer.token(iss="http://127.0.0.1:1/realms/evil"),
        "unknown kid": lambda: issuer.token(key=RSAKey.generate_key(2048, parameters={"kid": "not-published"})),
        "alg none": lambda: unsigned_token(issuer.claims("reader-1", ("admin",))),
        "tampered payload": lambda: tampered(issuer.token("reader-1", ("reader",)), realm_access={"roles": ["admin"]}),
        "HS256 with the public key": lambda: jwt.encode(
            {"alg": "HS256", "kid": "rsa-1"}, issuer.claims("reader-1"),
            OctKey.import_key(issuer.keys[0].as_pem(private=False))),
        "not yet valid": lambda: issuer.token(nbf=now + 3600),
        "no sub": lambda: issuer.token(sub=None),
        "garbage": lambda: "not.a.jwt",
    }[case]()
    r = await http.get("/workitems", headers=bearer(token))
    assert r.status_code == 401, (case, r.status_code, r.text)
    assert challenge(r).startswith('Bearer realm="ups-server", error="invalid_token", error_description="')
    assert r.json()["message"]


async def test_a_token_without_a_role_is_403_insufficient_scope(http, issuer):
    r = await http.get("/workitems", headers=bearer(issuer.token(roles=("offline_access",))))
    assert r.status_code == 403
    assert 'error="insufficient_scope"' in challenge(r)


async def test_another_authorization_scheme_is_400_invalid_request(http):
    r = await http.get("/workitems", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert r.status_code == 400
    assert 'error="invalid_request"' in challenge(r)


async def test_keys_are_cached_and_fetched_again_for_an_unknown_kid(issuer):
    verifier = OIDCVerifier(issuer.url, AUDIENCE)
    await verifier.claims(issuer.token())
    await verifier.claims(issuer.token("reader-2"))
    assert verifier.fetches == 1
    kid = issuer.rotate()  # the issuer rolls its key: the server learns it from the JWKS
    claims = await verifier.claims(issuer.token("reader-3", kid=kid))
    assert claims["sub"] == "reader-3"
    assert verifier.fetches == 2
    stranger = RSAKey.generate_key(2048, parameters={"kid": "stranger"})
    for _ in range(3):  # a made-up kid is looked for once, not on every request
        with pytest.raises(TokenError, match="kid 'stranger'"):
            await verifier.claims(issuer.token(key=stranger))
    assert verifier.fetches == 3


async def test_nbf_and_exp_have_a_small_leeway(issuer):
    verifier = OIDCVerifier(issuer.url, AUDIENCE)
    now = int(time.time())
    await verifier.claims(issuer.token(nbf=now + 20))  # a clock 20 s ahead of ours
    await verifier.claims(issuer.token(exp=now - 20))
    with pytest.raises(TokenError, match="expired"):
        await verifier.claims(issuer.token(exp=now - 600))


def test_principal_from_keycloak_claims():
    claims = {"sub": "f3b1", "preferred_username": "dr.house", "name": "Gregory House",
              "realm_access": {"roles": ["reader", "offline_access", "arbitrator"]}, "worklists": ["NHS_A"]}
    p = Principal.from_claims(claims, "realm_access.roles", "worklists")
    assert (p.subject, p.display_name, p.roles, p.worklists) == (
        "f3b1", "dr.house", frozenset({"reader", "arbitrator"}), frozenset({"NHS_A"}))
    p = Principal.from_claims({"sub": "x", "name": "X", "groups": "admin"}, "groups", "worklists")
    assert (p.display_name, p.roles, p.worklists) == ("X", frozenset({"admin"}), None)  # no claim: all worklists
    p = Principal.from_claims({"sub": "x", "https://ups/roles": ["ingest"]}, "https://ups/roles", "w")
    assert p.roles == frozenset({"ingest"})
