"""Who an association acts for: User Identity Negotiation (PS3.7 D.3.3.7) or the calling AE.

Open mode (``--auth none``): every association has the OPEN principal. Under ``--auth oidc``:
a type 5 identity (JSON Web Token) is verified like an HTTP bearer token; an invalid one rejects
the association (A-ASSOCIATE-RJ, as pynetdicom answers a failed identity). An association
without a user identity (or with a type this server does not verify) gets the roles
``--ae-roles`` gives its calling AE title, and none when it is not listed.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING

from pynetdicom.association import Association
from pynetdicom.events import Event

from ..audit import MINOR_FAILURE, USER_AUTHENTICATION, Actor, record_now
from ..auth.oidc import IssuerUnavailable, TokenError
from ..auth.principal import OPEN, Principal
from ..auth.settings import ae_roles_of

if TYPE_CHECKING:
    from .server import DimseServer

log = logging.getLogger(__name__)

JWT = 5  # User-Identity-Type: JSON Web Token
_ATTRIBUTE = "ups_principal"


class AssociationIdentity:
    def __init__(self, dimse: DimseServer):
        self.dimse = dimse
        self.verifier = dimse.verifier
        self.ae_roles = {aet.strip(): frozenset(ae_roles_of(roles))
                         for aet, roles in dimse.settings.ae_roles.items()}

    def on_user_identity(self, event: Event) -> tuple[bool, bytes | None]:
        """EVT_USER_ID: (accepted, server response for a positive response)."""
        if self.verifier is None:
            return True, None
        calling = event.assoc.requestor.ae_title.strip()
        if event.user_id_type != JWT:
            log.info("association from %s: user identity type %d is not verified; AE roles apply", calling,
                     event.user_id_type)
            return True, None
        try:
            token = bytes(event.primary_field).decode("ascii").strip()
            principal = self.dimse.bridge.call(self.verifier.principal(token))
        except (TokenError, UnicodeDecodeError, IssuerUnavailable) as exc:
            reason = getattr(exc, "description", None) or str(exc)
            log.warning("association from %s at %s rejected: its JSON Web Token is not accepted: %s", calling,
                        event.assoc.requestor.address, reason)
            self._audit_failure(event, reason)
            return False, None
        setattr(event.assoc, _ATTRIBUTE, dataclasses.replace(principal, ae_title=calling,
                                                             address=event.assoc.requestor.address))
        return True, principal.subject.encode() if principal.subject else b""

    def principal(self, assoc: Association) -> Principal:
        """The principal of an established association (with the peer's address, for the audit)."""
        address = assoc.requestor.address
        if self.verifier is None:
            return dataclasses.replace(OPEN, address=address)
        found = getattr(assoc, _ATTRIBUTE, None)
        if found is not None:
            return found
        calling = assoc.requestor.ae_title.strip()
        return dataclasses.replace(Principal.for_ae(calling, self.ae_roles.get(calling, ())), address=address)

    def _audit_failure(self, event: Event, reason: str) -> None:
        requestor = event.assoc.requestor
        actor = Actor(ae_title=requestor.ae_title.strip(), address=requestor.address)
        try:
            self.dimse.bridge.call(record_now(self.dimse.services.engine, USER_AUTHENTICATION, actor,
                                              "authentication", outcome=MINOR_FAILURE,
                                              detail=f"user identity (JWT): {reason}"))
        except Exception:
            log.exception("recording an authentication failure failed")
