"""What a store gives back, and the one error bad input raises."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..dicom.statuses import Storage


class IngestError(ValueError):
    """An instance refused for its content: ``reason`` says why, ``status`` is the DICOM
    failure status to answer with (a ``Storage`` status: data set does not match SOP class,
    cannot understand)."""

    def __init__(self, reason: str, status: Storage = Storage.CANNOT_UNDERSTAND, *, sop_class_uid: str | None = None,
                 sop_instance_uid: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.sop_class_uid = sop_class_uid  # when known (the instance could be parsed)
        self.sop_instance_uid = sop_instance_uid


@dataclass
class StoreResult:
    """One stored (or already present) instance."""

    study_uid: str
    series_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax: str
    stored: bool  # False: the instance was already present (idempotent re-store)
    rule_failures: int = 0  # on_store rules that failed (the instance is stored anyway)

    @property
    def already_present(self) -> bool:
        return not self.stored

    @property
    def retrieve_path(self) -> str:
        """The WADO-RS path of the instance, relative to the DICOMweb base URL."""
        return f"/studies/{self.study_uid}/series/{self.series_uid}/instances/{self.sop_instance_uid}"


@dataclass
class StoredInstance:
    """What on_store hooks see: the instance's DICOM JSON (no bulk data) and where it came from."""

    study_uid: str
    series_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    metadata: dict[str, Any]
    source_ae: str | None = None
    source_host: str | None = None
    receiving_ae: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
