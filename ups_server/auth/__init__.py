"""Identity and access: who makes a request (Principal), OIDC bearer tokens, TLS, trusted proxies."""

from .principal import ADMIN, ARBITRATOR, INGEST, OPEN, READER, ROLES, Principal

__all__ = ["ADMIN", "ARBITRATOR", "INGEST", "OPEN", "READER", "ROLES", "Principal"]
