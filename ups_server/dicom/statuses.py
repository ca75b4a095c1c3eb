"""Statuses of the non-UPS services, one table per service class, with the HTTP status each
maps to beside it (UPS outcomes are ``ups_server.ups.errors.Outcome``).

Storage: C-STORE (PS3.4 B.2.3) and the per-instance Failure Reason of STOW-RS (PS3.18 10.5.3).
Find: C-FIND (PS3.4 C.4.1.1.4, Table CC.2.8-2), QIDO-RS and the UPS-RS Search query syntax.
Retrieve: C-MOVE / C-GET (PS3.4 C.4.2.1.5, C.4.3.1.4) and WADO-RS. Verification: C-ECHO.
"""

from __future__ import annotations

from enum import IntEnum


class Verification(IntEnum):
    SUCCESS = 0x0000


class Storage(IntEnum):
    SUCCESS = 0x0000
    PROCESSING_FAILURE = 0x0110
    NOT_AUTHORIZED = 0x0124  # PS3.7 C.5.x: the association's principal may not store
    OUT_OF_RESOURCES = 0xA700
    DATASET_DOES_NOT_MATCH_SOP_CLASS = 0xA900
    CANNOT_UNDERSTAND = 0xC000


# A STOW-RS request in which no instance was stored answers 400 when every failure is one the
# client must fix in the request itself, else 409 (PS3.18 10.5.3.1); 200 all stored, 202 some.
# A principal without the ingest role is refused the whole request (403) before a part is read;
# a body that is no multipart/related message at all is not understood (400).
STORAGE_HTTP: dict[Storage, int] = {
    Storage.SUCCESS: 200,
    Storage.PROCESSING_FAILURE: 409,
    Storage.NOT_AUTHORIZED: 403,
    Storage.OUT_OF_RESOURCES: 409,
    Storage.DATASET_DOES_NOT_MATCH_SOP_CLASS: 409,
    Storage.CANNOT_UNDERSTAND: 400,
}


def stow_http_status(stored: int, failures: list[int]) -> int:
    """The HTTP status of a STOW-RS response: ``stored`` instances, ``failures`` their statuses."""
    if not failures:
        return STORAGE_HTTP[Storage.SUCCESS]
    if stored:
        return 202
    statuses = {STORAGE_HTTP[Storage(code)] for code in failures}
    return statuses.pop() if len(statuses) == 1 else 409


class Find(IntEnum):
    SUCCESS = 0x0000
    NOT_AUTHORIZED = 0x0124
    OUT_OF_RESOURCES = 0xA700
    IDENTIFIER_DOES_NOT_MATCH = 0xA900
    UNABLE_TO_PROCESS = 0xC000
    CANCELED = 0xFE00
    PENDING = 0xFF00


# QIDO-RS / UPS-RS Search: a query the server cannot understand is 400 (PS3.18 8.3.4).
FIND_HTTP: dict[Find, int] = {
    Find.SUCCESS: 200,
    Find.PENDING: 200,
    Find.NOT_AUTHORIZED: 403,
    Find.IDENTIFIER_DOES_NOT_MATCH: 400,
    Find.UNABLE_TO_PROCESS: 500,
    Find.OUT_OF_RESOURCES: 503,
}


class Retrieve(IntEnum):
    SUCCESS = 0x0000
    NOT_AUTHORIZED = 0x0124
    MOVE_DESTINATION_UNKNOWN = 0xA801
    IDENTIFIER_DOES_NOT_MATCH = 0xA900
    UNABLE_TO_PROCESS = 0xC000
    CANCELED = 0xFE00
    PENDING = 0xFF00


# WADO-RS: the statuses it shares with C-MOVE / C-GET (a study that is not there, or not
# visible to the principal, is the resource's 404, which C-MOVE has no status for).
RETRIEVE_HTTP: dict[Retrieve, int] = {
    Retrieve.SUCCESS: 200,
    Retrieve.NOT_AUTHORIZED: 403,
}
