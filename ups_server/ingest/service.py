"""IngestService: store one instance (blob, index, on_store hooks) - shared by STOW-RS and C-STORE.

A store parses and checks the instance, writes the file (temp + fsync + rename) before the
index commits, then in ONE transaction: takes the study's advisory lock, indexes the instance
and runs the on_store hooks (the rules). Hooks guard themselves with SAVEPOINTs, so a failing
rule never loses the stored instance.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from pydicom import Dataset
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from . import index
from .blobs import BlobStore
from .model import DATASET_DOES_NOT_MATCH_SOP_CLASS, IngestError, StoredInstance, StoreResult
from .parse import ParsedInstance, metadata_json, parse_bytes, parse_dataset, parse_file

__all__ = ["IngestError", "IngestService", "StoreResult", "StoredInstance"]

log = logging.getLogger(__name__)

# An on_store hook: runs inside the store transaction; returns how many rules failed.
StoreHook = Callable[[AsyncConnection, StoredInstance], Awaitable[int]]


class IngestService:
    def __init__(self, engine: AsyncEngine, data_dir: Path):
        self.engine = engine
        self.blobs = BlobStore(Path(data_dir) / "blobs")
        self.on_store: list[StoreHook] = []

    async def store(self, data: bytes | Dataset | Path, *, source_ae: str | None = None,
                    source_host: str | None = None, receiving_ae: str | None = None,
                    expected_study: str | None = None) -> StoreResult:
        """Store one instance. ``data``: a Part 10 file (bytes, or a path to a spooled file that
        is moved into the store), or a pydicom Dataset with ``file_meta`` (DIMSE C-STORE).
        ``expected_study``: refuse an instance of another study (STOW-RS to /studies/{study}).
        Raises IngestError for input that is not a storable DICOM instance."""
        parsed, metadata, temp, size = await asyncio.to_thread(self._prepare, data, expected_study)
        result = StoreResult(parsed.study_uid, parsed.series_uid, parsed.sop_instance_uid, parsed.sop_class_uid,
                             parsed.transfer_syntax, stored=False)
        relative = self.blobs.relative_path(parsed.study_uid, parsed.series_uid, parsed.sop_instance_uid)
        source = {"source_ae": source_ae, "source_host": source_host, "receiving_ae": receiving_ae}
        try:
            async with self.engine.begin() as conn:
                await index.lock_study(conn, parsed.study_uid)
                added = await index.add_instance(
                    conn, study_uid=parsed.study_uid, series_uid=parsed.series_uid,
                    sop_uid=parsed.sop_instance_uid, sop_class_uid=parsed.sop_class_uid,
                    transfer_syntax=parsed.transfer_syntax, path=relative, size=size, metadata=metadata,
                    source=source)
                if not added:
                    return result  # already stored: the stored file is left as it is
                await asyncio.to_thread(self.blobs.place, temp, relative)  # in place before the index commits
                result.stored = True
                stored = StoredInstance(parsed.study_uid, parsed.series_uid, parsed.sop_instance_uid,
                                        parsed.sop_class_uid, metadata, source_ae, source_host, receiving_ae)
                for hook in self.on_store:
                    result.rule_failures += await hook(conn, stored)
        finally:
            temp.unlink(missing_ok=True)
        return result

    def _prepare(self, data: bytes | Dataset | Path, expected_study: str | None
                 ) -> tuple[ParsedInstance, dict, Path, int]:
        """In a worker thread: parse and check, DICOM JSON, and the file synced in a temp path."""
        try:
            parsed, metadata = _parse(data)
        except BaseException:
            if isinstance(data, Path):
                data.unlink(missing_ok=True)
            raise
        if expected_study and parsed.study_uid != expected_study:
            _discard(parsed)
            raise IngestError(f"StudyInstanceUID {parsed.study_uid} is not the study {expected_study} of the "
                              "request", DATASET_DOES_NOT_MATCH_SOP_CLASS, sop_class_uid=parsed.sop_class_uid,
                              sop_instance_uid=parsed.sop_instance_uid)
        if parsed.encoded is not None:
            _discard(parsed)
            return parsed, metadata, self.blobs.write_temp(parsed.encoded), len(parsed.encoded)
        assert parsed.source is not None
        return parsed, metadata, parsed.source, self.blobs.sync(parsed.source)

    def path_of(self, relative: str) -> Path:
        return self.blobs.path(relative)


def _parse(data: bytes | Dataset | Path) -> tuple[ParsedInstance, dict]:
    if isinstance(data, (bytes, bytearray, memoryview)):
        parsed = parse_bytes(bytes(data))
    elif isinstance(data, Path):
        parsed = parse_file(data)
    elif isinstance(data, Dataset):
        parsed = parse_dataset(data)
    else:
        raise IngestError(f"cannot store a {type(data).__name__}")
    try:
        metadata = metadata_json(parsed.dataset)
    except Exception as exc:  # noqa: BLE001 - undecodable values fail in many ways
        raise IngestError(f"cannot convert the instance to DICOM JSON: {exc}") from None
    return parsed, metadata


def _discard(parsed: ParsedInstance) -> None:
    if parsed.source is not None:
        parsed.source.unlink(missing_ok=True)
