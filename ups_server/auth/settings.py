"""Checks of the identity and access settings, and the warning an open server gets."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from .principal import ROLES

if TYPE_CHECKING:
    from ..config import Settings

AUTH_MODES = ("none", "oidc")


def problems(settings: Settings) -> list[str]:
    """What is wrong with the access settings (empty: nothing)."""
    found = []
    if settings.auth not in AUTH_MODES:
        found.append(f"auth must be one of {', '.join(AUTH_MODES)}, not {settings.auth!r}")
    if settings.auth == "oidc" and not (settings.oidc_issuer and settings.oidc_audience):
        found.append("auth oidc needs oidc_issuer and oidc_audience")
    if bool(settings.tls_cert) != bool(settings.tls_key):
        found.append("tls_cert and tls_key go together")
    if settings.dimse_tls_port and not settings.tls_cert:
        found.append("dimse_tls_port needs tls_cert and tls_key")
    for cidr in settings.trusted_proxies:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            found.append(f"trusted_proxies: {cidr!r} is not an address or CIDR")
    for aet, roles in settings.ae_roles.items():
        unknown = set(ae_roles_of(roles)) - ROLES
        if unknown:
            found.append(f"ae_roles: {aet} has unknown role(s) {', '.join(sorted(unknown))} "
                         f"(roles: {', '.join(sorted(ROLES))})")
    return found


def ae_roles_of(value: str) -> list[str]:
    return [r.strip() for r in value.replace("|", "+").split("+") if r.strip()]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def open_mode_warning(settings: Settings) -> str | None:
    """The warning for ``--auth none`` listening beyond loopback (None when there is none)."""
    if settings.auth != "none" or is_loopback(settings.host):
        return None
    listeners = [f"HTTP port {settings.http_port}"]
    if settings.dimse_port:
        listeners.append(f"DIMSE port {settings.dimse_port}")
    return (f"--auth none on {settings.host} ({', '.join(listeners)}): anyone who can reach this host may read "
            "every study and claim, change or cancel any workitem; use --auth oidc beyond one workstation")
