"""``AccessPolicy``: who may see and act on which workitem, plugged into the UPS core.

PS3.4 restricts nobody; a deployment's policy (roles, blind reading, worklist scoping: issue 10)
lives in ``rules/access.py`` and is handed to ``UPSService`` as the claim guards are. The service
asks the policy before each operation and ANDs the policy's SQL predicates into its read and
claim statements, so a filter composes with whatever the statement already selects.

A request's ``principal`` is opaque here; None stands for an in-process caller (the server
itself: rules, tools), which nothing restricts. ``OPEN_ACCESS`` is the core's own default.
"""

from __future__ import annotations

from collections.abc import Hashable
from enum import Enum
from typing import Any, Protocol

from sqlalchemy import ColumnElement
from sqlalchemy.ext.asyncio import AsyncConnection

from ..dicom.dataset import JsonDataset


class Act(Enum):
    """What a request does (the value names it in a refusal)."""

    CREATE = "Create"
    RETRIEVE = "Retrieve"
    SEARCH = "Search"
    CLAIM = "Claim"
    UPDATE = "Update"
    CHANGE_STATE = "Change State"
    REQUEST_CANCEL = "Request Cancellation"
    SKIP = "Skip"
    REASSIGN = "Reassign"


class AccessPolicy(Protocol):
    def reader(self, principal: Any, requester: str | None) -> str | None:
        """Who reads (the claimant, the reader of the distinct-readers rule and of the claim guards)."""

    def allow(self, principal: Any, act: Act) -> None:
        """Raise UPSError unless ``principal`` may ``act`` at all."""

    async def check(self, conn: AsyncConnection, principal: Any, requester: str | None, row: dict[str, Any],
                    act: Act) -> None:
        """Raise UPSError unless ``principal`` may ``act`` on the locked workitem ``row``."""

    def visible(self, principal: Any) -> ColumnElement[bool] | None:
        """SQL over ``workitems``: what ``principal`` may see (None: everything)."""

    def claimable(self, principal: Any) -> ColumnElement[bool] | None:
        """SQL over ``workitems``: the SCHEDULED ones ``principal`` may claim (None: all)."""

    def claim_scope(self, principal: Any) -> Hashable:
        """What ``claimable(principal)`` depends on (equal scopes: the same SQL), so that a statement
        built with it is reused for every principal of that scope whatever else tells them apart
        (subject, client address)."""

    def performed(self, principal: Any, ds: JsonDataset) -> None:
        """Complete the dataset of an update or completion with who performed it (in place)."""


class OpenAccess:
    """Everyone may do everything; the reader is the requester the client names."""

    def reader(self, principal: Any, requester: str | None) -> str | None:
        return requester

    def allow(self, principal: Any, act: Act) -> None:
        return None

    async def check(self, conn: AsyncConnection, principal: Any, requester: str | None, row: dict[str, Any],
                    act: Act) -> None:
        return None

    def visible(self, principal: Any) -> ColumnElement[bool] | None:
        return None

    def claimable(self, principal: Any) -> ColumnElement[bool] | None:
        return None

    def claim_scope(self, principal: Any) -> Hashable:
        return None

    def performed(self, principal: Any, ds: JsonDataset) -> None:
        return None


OPEN_ACCESS = OpenAccess()
