"""Statuses of the non-UPS services, one table per service class, with the HTTP status each
maps to beside it (UPS outcomes are ``ups_server.ups.errors.Outcome``).

Storage: C-STORE (PS3.4 B.2.3) and the per-instance Failure Reason of STOW-RS (PS3.18 10.5.3).
Find: C-FIND (PS3.4 C.4.1.1.4, Table CC.2.8-2) and QIDO-RS. Retrieve: C-MOVE / C-GET (PS3.4
C.4.2.1.5, C.4.3.1.4; WADO-RS answers in HTTP terms only). Verification: C-ECHO.
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
STORAGE_HTTP: dict[Storage, int] = {
    Storage.SUCCESS: 200,
    Storage.PROCESSING_FAILURE: 409,
    Storage.NOT_AUTHORIZED: 409,
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
    return 400 if all(STORAGE_HTTP[Storage(code)] == 400 for code in failures) else 409


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
