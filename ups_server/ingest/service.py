"""IngestService: store instances (blob, index, on_store hooks) - shared by STOW-RS and C-STORE.

A store parses and checks each instance and spools it to a local temp file, records the new
objects' keys (``uploads``) and puts them in the blob store (durable there), then in ONE
transaction: takes the studies' advisory locks, indexes the instances, settles their upload
records and runs the on_store hooks (the rules) once for the new ones. An index row therefore
never names a missing object; an object whose row never came is removed by housekeeping.
C-STORE stores one instance a transaction; STOW-RS a batch of parts. Hooks guard themselves with
SAVEPOINTs, so a failing rule never loses a stored instance.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom import Dataset
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .. import metrics
from ..audit import Actor
from ..audit import hooks as audit_hooks
from ..dicom.statuses import Storage
from . import index, uploads
from .blobs import BlobStore, FileBlobStore
from .model import IngestError, StoredInstance, StoreResult
from .parse import (
    DEFAULT_INFLATE,
    InflateLimits,
    ParsedInstance,
    metadata_json,
    parse_bytes,
    parse_dataset,
    parse_file,
)

__all__ = ["IngestError", "IngestService", "StoreResult", "StoredInstance"]

log = logging.getLogger(__name__)

# An on_store hook: runs inside the store transaction for the instances that transaction newly
# stored; returns, for each of them, how many rules failed.
StoreHook = Callable[[AsyncConnection, list[StoredInstance]], Awaitable[list[int]]]
# An on_delete hook: runs inside the deletion's transaction, after the study's instances are gone;
# returns what it did (for the caller's report).
DeleteHook = Callable[[AsyncConnection, str], Awaitable[Any]]
Storable = bytes | Dataset | Path


class IngestService:
    def __init__(self, engine: AsyncEngine, blobs: BlobStore, orphan_grace: int = 3600,
                 inflate: InflateLimits = DEFAULT_INFLATE):
        self.engine = engine
        self.blobs = blobs
        self.orphan_grace = orphan_grace
        self.inflate = inflate  # how far a deflated instance may inflate
        self.on_store: list[StoreHook] = []
        self.on_delete: list[DeleteHook] = []

    async def store(self, data: Storable, *, source_ae: str | None = None, source_host: str | None = None,
                    receiving_ae: str | None = None, expected_study: str | None = None) -> StoreResult:
        """Store one instance. ``data``: a Part 10 file (bytes, or a path to a spooled file that
        is moved into the store), or a pydicom Dataset with ``file_meta`` (DIMSE C-STORE).
        ``expected_study``: refuse an instance of another study (STOW-RS to /studies/{study}).
        Raises IngestError for input that is not a storable DICOM instance."""
        [result] = await self.store_many([data], source_ae=source_ae, source_host=source_host,
                                         receiving_ae=receiving_ae, expected_study=expected_study)
        if isinstance(result, IngestError):
            raise result
        return result

    async def store_many(self, items: list[Storable], *, source_ae: str | None = None,
                         source_host: str | None = None, receiving_ae: str | None = None,
                         expected_study: str | None = None) -> list[StoreResult | IngestError]:
        """Store several instances (a STOW-RS request) in ONE transaction: each is parsed and its
        file synced on its own (a bad one gives its IngestError), then the study locks are taken
        (in UID order), every instance is indexed and the rules run once for the new ones."""
        prepared = await asyncio.gather(*(asyncio.to_thread(self._prepare_or_error, d, expected_study)
                                          for d in items))
        results: list[StoreResult | IngestError] = []
        ready: list[tuple[int, _Prepared]] = []
        for i, p in enumerate(prepared):
            if isinstance(p, IngestError):
                results.append(p)
                continue
            results.append(StoreResult(p.parsed.study_uid, p.parsed.series_uid, p.parsed.sop_instance_uid,
                                       p.parsed.sop_class_uid, p.parsed.transfer_syntax, stored=False))
            ready.append((i, p))
        metrics.INGEST_INSTANCES.labels("refused").inc(len(items) - len(ready))
        if not ready:
            return results
        source = {"source_ae": source_ae, "source_host": source_host, "receiving_ae": receiving_ae}
        keys = [self.blobs.new_key(p.parsed.study_uid, p.parsed.series_uid, p.parsed.sop_instance_uid)
                for _, p in ready]
        try:
            await uploads.record(self.engine, keys)
            try:
                await self.blobs.put_many([(p.temp, key) for (_, p), key in zip(ready, keys, strict=True)])
            except BaseException:
                await uploads.forget(self.engine, self.blobs, keys)
                raise
            indexed = await self._index(ready, keys, results, source)
        finally:
            for _, p in ready:
                p.temp.unlink(missing_ok=True)
        await uploads.forget(self.engine, self.blobs, [key for key in keys if key not in indexed])
        metrics.INGEST_INSTANCES.labels("stored").inc(len(indexed))
        metrics.INGEST_INSTANCES.labels("duplicate").inc(len(ready) - len(indexed))
        metrics.INGEST_BYTES.inc(sum(p.size for (_, p), key in zip(ready, keys, strict=True) if key in indexed))
        return results

    async def _index(self, ready: list[tuple[int, _Prepared]], keys: list[str],
                     results: list[StoreResult | IngestError], source: dict[str, str | None]) -> set[str]:
        """The store transaction; the keys it indexed. A failure before the commit removes the
        objects; a failed commit leaves them to housekeeping (the commit may have happened)."""
        committing = False
        try:
            async with self.engine.begin() as conn:
                for study in sorted({p.parsed.study_uid for _, p in ready}):
                    await index.lock_study(conn, study)
                new: list[tuple[int, StoredInstance]] = []
                indexed: list[str] = []
                for (i, p), key in zip(ready, keys, strict=True):
                    parsed = p.parsed
                    added = await index.add_instance(
                        conn, study_uid=parsed.study_uid, series_uid=parsed.series_uid,
                        sop_uid=parsed.sop_instance_uid, sop_class_uid=parsed.sop_class_uid,
                        transfer_syntax=parsed.transfer_syntax, path=key, size=p.size, metadata=p.metadata,
                        source=source)
                    if not added:
                        continue  # already stored: the stored object is left as it is, this one removed
                    indexed.append(key)
                    new.append((i, StoredInstance(parsed.study_uid, parsed.series_uid, parsed.sop_instance_uid,
                                                  parsed.sop_class_uid, p.metadata, source["source_ae"],
                                                  source["source_host"], source["receiving_ae"])))
                    results[i].stored = True  # type: ignore[union-attr]
                await uploads.settle(conn, indexed)
                for hook in self.on_store if new else ():
                    failures = await hook(conn, [inst for _, inst in new])
                    for (i, _), n in zip(new, failures, strict=True):
                        results[i].rule_failures += n  # type: ignore[union-attr]
                committing = True
        except BaseException:
            if not committing:
                await uploads.forget(self.engine, self.blobs, keys)
            raise
        return set(indexed)

    async def remove_stale_spool(self) -> int:
        """Housekeeping: remove spool files older than the grace period (a crash left them)."""
        removed = await asyncio.to_thread(self.blobs.remove_spooled_before, time.time() - self.orphan_grace)
        if removed:
            log.info("housekeeping: removed %d spool file(s) older than %d s", removed, self.orphan_grace)
        return removed

    async def remove_orphans(self) -> list[str]:
        """Housekeeping: remove objects whose index row never committed within the grace period."""
        return await uploads.remove_orphans(self.engine, self.blobs, self.orphan_grace)

    async def delete_study(self, study_uid: str, actor: Actor) -> StudyDeleted | None:
        """Remove a study: in ONE transaction under its lock, its index rows, the audit row (who)
        and the on_delete hooks (the rules reconcile its workitems); then, committed, its files.
        None when the study is not stored."""
        async with self.engine.begin() as conn:
            await index.lock_study(conn, study_uid)
            paths = await index.delete_study(conn, study_uid)
            if paths is None:
                return None
            await audit_hooks.study_deleted(conn, actor, study_uid, len(paths))
            effects = [await hook(conn, study_uid) for hook in self.on_delete]
            await uploads.record_in(conn, paths)  # removed below; by housekeeping if this process dies first
        await uploads.forget(self.engine, self.blobs, paths)
        return StudyDeleted(study_uid, len(paths), effects)

    def _prepare_or_error(self, data: Storable, expected_study: str | None) -> _Prepared | IngestError:
        try:
            return _Prepared(*self._prepare(data, expected_study))
        except IngestError as exc:
            return exc

    def _prepare(self, data: bytes | Dataset | Path, expected_study: str | None
                 ) -> tuple[ParsedInstance, dict, Path, int]:
        """In a worker thread: parse and check, DICOM JSON, and the file synced in a temp path."""
        try:
            parsed, metadata = _parse(data, self.inflate)
        except BaseException:
            if isinstance(data, Path):
                data.unlink(missing_ok=True)
            raise
        if expected_study and parsed.study_uid != expected_study:
            _discard(parsed)
            raise IngestError(f"StudyInstanceUID {parsed.study_uid} is not the study {expected_study} of the "
                              "request", Storage.DATASET_DOES_NOT_MATCH_SOP_CLASS, sop_class_uid=parsed.sop_class_uid,
                              sop_instance_uid=parsed.sop_instance_uid)
        if parsed.encoded is not None:
            _discard(parsed)
            return parsed, metadata, self.blobs.write_temp(parsed.encoded), len(parsed.encoded)
        assert parsed.source is not None
        return parsed, metadata, parsed.source, self.blobs.sync(parsed.source)

    def path_of(self, key: str) -> Path:
        """The file of a stored instance (the file store only)."""
        assert isinstance(self.blobs, FileBlobStore), "instances are not files in this blob store"
        return self.blobs.path(key)


def _parse(data: bytes | Dataset | Path, inflate: InflateLimits) -> tuple[ParsedInstance, dict]:
    if isinstance(data, (bytes, bytearray, memoryview)):
        parsed = parse_bytes(bytes(data), inflate)
    elif isinstance(data, Path):
        parsed = parse_file(data, inflate)
    elif isinstance(data, Dataset):
        parsed = parse_dataset(data)
    else:
        raise IngestError(f"cannot store a {type(data).__name__}")
    try:
        metadata = metadata_json(parsed.dataset)
    except Exception as exc:  # noqa: BLE001 - undecodable values fail in many ways
        raise IngestError(f"cannot convert the instance to DICOM JSON: {exc}") from None
    return parsed, metadata


@dataclass
class StudyDeleted:
    study_uid: str
    instances: int
    effects: list[Any]  # what each on_delete hook returned


@dataclass
class _Prepared:
    parsed: ParsedInstance
    metadata: dict
    temp: Path
    size: int


def _discard(parsed: ParsedInstance) -> None:
    if parsed.source is not None:
        parsed.source.unlink(missing_ok=True)
