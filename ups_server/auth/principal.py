"""The principal of a request: the person (or station) it acts for, with roles and worklists."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

READER, ARBITRATOR, ADMIN, INGEST = "reader", "arbitrator", "admin", "ingest"
RETRIEVE = "retrieve"  # may queue and follow retrieve jobs (as admin may)
ROLES = frozenset({READER, ARBITRATOR, ADMIN, INGEST, RETRIEVE})


@dataclass(frozen=True)
class Principal:
    """``subject`` is the token's ``sub`` (None in open mode and for AE-title identities);
    ``worklists`` None means not restricted to any Worklist Label."""

    subject: str | None
    display_name: str | None = None
    roles: frozenset[str] = frozenset()
    worklists: frozenset[str] | None = None
    authenticated: bool = False  # identity proved (token / DIMSE JWT); False: open mode or AE roles
    ae_title: str | None = None  # the calling AE of a DIMSE association
    address: str | None = None  # the client's network address (for the audit trail)

    def has(self, *roles: str) -> bool:
        """True when the principal holds one of ``roles`` (admin holds every role)."""
        return ADMIN in self.roles or any(r in self.roles for r in roles)

    def sees_worklist(self, label: str | None) -> bool:
        return self.worklists is None or label in self.worklists

    @classmethod
    def from_claims(cls, claims: dict[str, Any], roles_claim: str, worklists_claim: str) -> Principal:
        """Subject = ``sub``; display name = ``preferred_username`` or ``name``; roles from the
        dotted path ``roles_claim`` (Keycloak: ``realm_access.roles``); worklists from
        ``worklists_claim`` (absent: not restricted)."""
        roles = _strings(claim_at(claims, roles_claim))
        worklists = claim_at(claims, worklists_claim)
        return cls(
            subject=str(claims["sub"]),
            display_name=claims.get("preferred_username") or claims.get("name"),
            roles=frozenset(r for r in roles if r in ROLES),
            worklists=None if worklists is None else frozenset(_strings(worklists)),
            authenticated=True,
        )

    @classmethod
    def for_ae(cls, ae_title: str, roles: Iterable[str]) -> Principal:
        """A DIMSE association without a user identity: the roles ``--ae-roles`` gives its AE."""
        return cls(subject=None, display_name=ae_title, roles=frozenset(roles), ae_title=ae_title)


# Open mode (--auth none): one workstation; every role, no subject (the requester names the reader).
OPEN = Principal(subject=None, roles=ROLES)


def claim_at(claims: dict[str, Any], path: str) -> Any:
    """The value at a dotted claim path (``realm_access.roles``); a claim whose name holds the
    whole path (``"https://example.org/roles"``) is found too. None when absent."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _strings(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v for v in value.replace(",", " ").split() if v]
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return []
