"""Shared pieces of the access tests: a real OIDC issuer, --auth oidc settings, tokens by role."""

from __future__ import annotations

import dataclasses

from ups_server.config import Settings

from .oidc_issuer import AUDIENCE, Issuer, bearer

# subjects of the test principals and their roles
PEOPLE = {
    "reader-a": ("reader",), "reader-b": ("reader",), "arbiter": ("arbitrator",), "boss": ("admin",),
    "pacs": ("ingest",),
}


def oidc_settings(settings: Settings, issuer: Issuer, **changes) -> Settings:
    return dataclasses.replace(settings, auth="oidc", oidc_issuer=issuer.url, oidc_audience=AUDIENCE, **changes)


def as_(issuer: Issuer, subject: str, **claims) -> dict[str, str]:
    """The Authorization header of ``subject`` (roles from PEOPLE unless given)."""
    roles = claims.pop("roles", PEOPLE.get(subject, ("reader",)))
    return bearer(issuer.token(subject, tuple(roles), **claims))
