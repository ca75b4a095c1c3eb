"""IngestService: store instances (blob, index, on_store hooks) - shared by STOW-RS and C-STORE.

A store parses and checks each instance and spools it to a local temp file, records the new
objects' keys (``uploads``) and puts them in the blob store (durable there), then in ONE
transaction: takes the studies' advisory locks, indexes the instances, settles their upload
records and runs the on_store hooks (the rules) once for the new ones. An index row therefore
never names a missing object; an object whose row never came is removed by housekeeping.
A C-STORE brings one instance, a STOW-RS request batches of parts; what concurrent stores bring
while a transaction commits goes into the next one (``group_commit.py``): one commit, one WAL
flush, one rules pass for all of them, and each caller answered only after that commit. Hooks
guard themselves with SAVEPOINTs, so a failing rule never loses a stored instance.
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
from .group_commit import CommitFailed, GroupCommit
from .model import IngestError, StoredInstance, StoreResult
from .parse import (
    DEFAULT_INFLATE,
    InflateLimits,
    ParsedInstance,
    metadata_json,
    parse_bytes,
    parse_dataset,
    parse_file,
    read_part10,
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
        # concurrent stores share transactions: their upload records, then their index rows + rules
        self._recording: GroupCommit[str, None] = GroupCommit(lambda: self.engine, uploads.record_in, autocommit=True)
        self._indexing: GroupCommit[index.NewInstance, tuple[bool, int]] = GroupCommit(
            lambda: self.engine, self._index_batch)

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
        keys = [self.blobs.new_key(p.parsed.study_uid, p.parsed.series_uid, p.parsed.sop_instance_uid)
                for _, p in ready]
        try:
            await self._recording.run(keys)
            try:
                await self.blobs.put_many([(p.temp, key) for (_, p), key in zip(ready, keys, strict=True)])
            except BaseException:
                await uploads.forget(self.engine, self.blobs, keys)
                raise
            outcomes = await self._index([
                index.NewInstance(p.parsed.study_uid, p.parsed.series_uid, p.parsed.sop_instance_uid,
                                  p.parsed.sop_class_uid, p.parsed.transfer_syntax, key, p.size, p.metadata,
                                  source_ae, source_host, receiving_ae)
                for (_, p), key in zip(ready, keys, strict=True)])
        finally:
            for _, p in ready:
                p.temp.unlink(missing_ok=True)
        for (i, _), (stored, rule_failures) in zip(ready, outcomes, strict=True):
            results[i].stored = stored  # type: ignore[union-attr]
            results[i].rule_failures = rule_failures  # type: ignore[union-attr]
        await uploads.forget(self.engine, self.blobs,
                             [key for key, (stored, _) in zip(keys, outcomes, strict=True) if not stored])
        stored_count = sum(stored for stored, _ in outcomes)
        metrics.INGEST_INSTANCES.labels("stored").inc(stored_count)
        metrics.INGEST_INSTANCES.labels("duplicate").inc(len(ready) - stored_count)
        metrics.INGEST_BYTES.inc(sum(p.size for (_, p), (stored, _) in zip(ready, outcomes, strict=True) if stored))
        return results

    async def _index(self, new: list[index.NewInstance]) -> list[tuple[bool, int]]:
        """``new`` indexed through the group commit: per instance (indexed, rules that failed). A
        failure before the commit removes the objects; a failed commit (it may have happened) or a
        caller cancelled while its batch runs leaves them to housekeeping."""
        try:
            return await self._indexing.run(new)
        except (CommitFailed, asyncio.CancelledError):
            raise
        except BaseException:
            await uploads.forget(self.engine, self.blobs, [inst.path for inst in new])
            raise

    async def _index_batch(self, conn: AsyncConnection, new: list[index.NewInstance]) -> list[tuple[bool, int]]:
        """The store transaction of a batch (``GroupCommit`` work): the studies' locks, the index
        rows and the upload records settled in one statement, then the on_store hooks once for the
        instances that are new."""
        indexed = await index.add_instances(conn, new)  # under the studies' locks; upload records settled
        uploads.check_settled(indexed)
        added = [k for k, inst in enumerate(new) if inst.path in indexed]
        failures = [0] * len(new)
        stored = [StoredInstance(i.study_uid, i.series_uid, i.sop_uid, i.sop_class_uid, i.metadata, i.source_ae,
                                 i.source_host, i.receiving_ae) for i in (new[k] for k in added)]
        for hook in self.on_store if stored else ():
            for k, n in zip(added, await hook(conn, stored), strict=True):
                failures[k] += n
        return [(inst.path in indexed, failures[k]) for k, inst in enumerate(new)]

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
        if (read := read_part10(bytes(data))) is not None:  # the common form, without pydicom
            return read
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
