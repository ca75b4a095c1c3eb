"""The presentation contexts the DIMSE server accepts."""

from __future__ import annotations

from pydicom.uid import (
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from pydicom.uid import JPEGLossless as JPEGLosslessP14
from pynetdicom import AE, AllStoragePresentationContexts
from pynetdicom.sop_class import (
    UnifiedProcedureStepEvent,
    UnifiedProcedureStepPull,
    UnifiedProcedureStepPush,
    UnifiedProcedureStepQuery,
    UnifiedProcedureStepWatch,
    Verification,
)

UNCOMPRESSED = [ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian]
# What C-STORE accepts: the uncompressed syntaxes plus the common compressed ones (stored as received).
STORAGE_TRANSFER_SYNTAXES = [
    *UNCOMPRESSED,
    JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLosslessP14, JPEGLosslessSV1,
    JPEGLSLossless, JPEGLSNearLossless, JPEG2000Lossless, JPEG2000, RLELossless,
]
UPS_SOP_CLASSES = [
    UnifiedProcedureStepPush, UnifiedProcedureStepPull, UnifiedProcedureStepWatch,
    UnifiedProcedureStepEvent, UnifiedProcedureStepQuery,
]


def add_supported_contexts(ae: AE) -> None:
    """Verification, every storage SOP class (also in the SCP role, for C-GET), the five UPS SOP
    classes and Study / Patient Root Query/Retrieve (FIND, MOVE, GET)."""
    from .qr import QR_CLASSES

    ae.add_supported_context(Verification, UNCOMPRESSED)
    for cx in AllStoragePresentationContexts:
        ae.add_supported_context(cx.abstract_syntax, STORAGE_TRANSFER_SYNTAXES, scu_role=True, scp_role=True)
    for uid in UPS_SOP_CLASSES:
        ae.add_supported_context(uid, UNCOMPRESSED)
    for uid in QR_CLASSES:
        ae.add_supported_context(uid, UNCOMPRESSED)


def add_requested_contexts(ae: AE) -> None:
    """What the server asks for when it is the association requestor (N-EVENT-REPORT)."""
    ae.add_requested_context(UnifiedProcedureStepEvent, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    ae.add_requested_context(Verification)
