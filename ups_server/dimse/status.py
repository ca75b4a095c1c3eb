"""DIMSE statuses of the non-UPS services (Verification, Storage, C-FIND) in one place.

UPS outcomes come from ``ups_server.ups.errors.Outcome``; these are the PS3.4 Annex B / C
codes the adapters need besides them.
"""

from __future__ import annotations

SUCCESS = 0x0000
# PS3.7 C.5.x general status: the principal of the association may not do this (auth, issue 10)
NOT_AUTHORIZED = 0x0124
# C-STORE (PS3.4 B.2.3)
STORE_DATASET_DOES_NOT_MATCH = 0xA900
STORE_CANNOT_UNDERSTAND = 0xC000
STORE_OUT_OF_RESOURCES = 0xA700
# C-FIND (PS3.4 Table CC.2.8-2, C.4.1.1.4)
FIND_PENDING = 0xFF00
FIND_CANCELED = 0xFE00
FIND_IDENTIFIER_DOES_NOT_MATCH = 0xA900
FIND_UNABLE_TO_PROCESS = 0xC000
FIND_OUT_OF_RESOURCES = 0xA700
# Query/Retrieve C-FIND / C-MOVE / C-GET (PS3.4 C.4.1.1.4, C.4.2.1.5, C.4.3.1.4)
RETRIEVE_PENDING = 0xFF00
RETRIEVE_CANCELED = 0xFE00
RETRIEVE_IDENTIFIER_DOES_NOT_MATCH = 0xA900
RETRIEVE_UNABLE_TO_PROCESS = 0xC000
MOVE_DESTINATION_UNKNOWN = 0xA801
