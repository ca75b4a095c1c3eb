"""``RetrieveWorker``: the server component that runs retrieve jobs (``server.retrieve``).

A study job: C-FIND the study in each archive in order (the first that holds it is used; none:
``not_found``); IMAGE-level C-FIND for its instances; compare with what is stored here; fetch only
the missing ones (C-MOVE to this server's AE, or C-GET); check that all arrived. What arrives is
stored by the ingest service like any C-STORE, so the rules run for it. A lookup job (patient ID +
accession number) queues one study job per study the first archive that has any holds.

An unreachable archive (or one that fails the request, or instances that did not arrive) makes
the attempt fail: the job is retried after ``retrieve_retry_seconds`` (doubling) until
``retrieve_attempts`` attempts have failed, then it is ``failed`` with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import Any

from pydicom import Dataset
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..config import Settings
from ..dicom.statuses import Storage
from ..dimse.bridge import Bridge
from ..events.tasks import cancel, run_when_woken
from ..ingest import catalog
from ..ingest.service import IngestService
from . import jobs
from .archives import Archive, parse_archives
from .scu import ArchiveClient, ArchiveRefused, ArchiveUnreachable, Instances, retrieve_requests

log = logging.getLogger(__name__)

POLL_SECONDS = 2.0  # jobs posted to another process, and retries coming due
PROGRESS_SECONDS = 1.0
MAX_RETRY_SECONDS = 3600


class AttemptFailed(Exception):
    """This attempt failed for a reason worth a retry (the text says which)."""


class RetrieveWorker:
    def __init__(self, engine: AsyncEngine, ingest: IngestService, settings: Settings):
        self.engine = engine
        self.ingest = ingest
        self.settings = settings
        self.archives: list[Archive] = parse_archives(settings.archives)
        self.max_jobs = sum(a.associations for a in self.archives)
        self.wake = asyncio.Event()
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._running: set[asyncio.Task] = set()
        self._task: asyncio.Task | None = None
        self._associations: set[Any] = set()
        self._lock = threading.Lock()

    # ---- lifetime ---------------------------------------------------------------------------

    async def start(self) -> None:
        if not self.archives:
            return
        if not self.settings.dimse_port and any(a.method == "move" for a in self.archives):
            log.warning("archives retrieving by C-MOVE need this server's DIMSE port (--dimse-port): "
                        "their jobs will fail")
        self._slots = {a.name: asyncio.Semaphore(a.associations) for a in self.archives}
        self._task = asyncio.create_task(run_when_woken(self.wake, self.dispatch_once, POLL_SECONDS,
                                                        "retrieve job dispatch"))
        self.wake.set()
        log.info("retrieving from %s", ", ".join(str(a) for a in self.archives))

    async def stop(self) -> None:
        """Abort the associations under way and stop; running jobs stay ``running`` and are
        taken up again by the next start (or another process)."""
        with self._lock:
            for assoc in list(self._associations):
                assoc.abort()
        await cancel(self._task, *self._running)
        self._task = None

    async def dispatch_once(self) -> None:
        while len(self._running) < self.max_jobs:
            conn = await self.engine.connect()
            try:
                job = await jobs.take(conn)
            except BaseException:
                await conn.close()
                raise
            if job is None:
                await conn.close()
                return
            task = asyncio.create_task(self._hold(conn, job))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _hold(self, conn: AsyncConnection, job: jobs.Job) -> None:
        """Run ``job`` while ``conn`` holds its lock; the lock goes with the connection at the end."""
        try:
            await self.run(job)
        finally:
            with contextlib.suppress(Exception):
                await conn.invalidate()  # closes it: the session advisory lock is released
            with contextlib.suppress(Exception):
                await conn.close()
            self.wake.set()

    # ---- one job ----------------------------------------------------------------------------

    async def run(self, job: jobs.Job) -> None:
        log.info("retrieve job %d: attempt %d (%s)", job.id, job.attempts,
                 job.study_uid or f"patient {job.patient_id} accession {job.accession_number}")
        try:
            if job.is_lookup:
                await self._lookup(job)
            else:
                await self._study(job)
        except (AttemptFailed, ArchiveUnreachable, ArchiveRefused) as exc:
            await self._retry_or_fail(job, str(exc))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("retrieve job %d failed", job.id)
            await self._retry_or_fail(job, f"processing failure: {type(exc).__name__}: {exc}")

    async def _retry_or_fail(self, job: jobs.Job, reason: str) -> None:
        if job.attempts >= self.settings.retrieve_attempts:
            log.warning("retrieve job %d failed after %d attempts: %s", job.id, job.attempts, reason)
            await jobs.record(self.engine, job.id, state=jobs.FAILED, error=reason)
            return
        delay = min(self.settings.retrieve_retry_seconds * 2 ** (job.attempts - 1), MAX_RETRY_SECONDS)
        log.info("retrieve job %d: attempt %d failed (%s); retry in %ds", job.id, job.attempts, reason, delay)
        await jobs.retry_later(self.engine, job.id, delay, f"attempt {job.attempts} of "
                               f"{self.settings.retrieve_attempts} failed: {reason}; retrying in {delay}s")

    async def _on(self, archive: Archive, fn: Any, *args: Any) -> Any:
        """A blocking ArchiveClient call in a thread, within the archive's association limit."""
        async with self._slots[archive.name]:
            return await in_daemon_thread(fn, *args)

    def _client(self, archive: Archive) -> ArchiveClient:
        return ArchiveClient(archive, self.settings.ae_title, self._associations, self._lock)

    async def _first_archive(self, job: jobs.Job, ask: Any) -> tuple[Archive, Any] | None:
        """The first archive whose answer to ``ask(client)`` is not empty; None when every archive
        answered and none had it; AttemptFailed when none had it but some did not answer."""
        unreachable = []
        for archive in self.archives:
            try:
                found = await self._on(archive, ask, self._client(archive))
            except (ArchiveUnreachable, ArchiveRefused) as exc:
                unreachable.append(str(exc))
                continue
            if found:
                return archive, found
        if unreachable:
            raise AttemptFailed("; ".join(unreachable))
        return None

    async def _lookup(self, job: jobs.Job) -> None:
        keys = {"PatientID": job.patient_id or "", "AccessionNumber": job.accession_number or ""}
        located = await self._first_archive(job, lambda client: client.find_studies(**keys))
        if located is None:
            await jobs.record(self.engine, job.id, state=jobs.NOT_FOUND, error=(
                f"no study with patient ID {job.patient_id!r} and accession number {job.accession_number!r} "
                f"in any archive ({self._names()})"))
            return
        archive, study_uids = located
        await jobs.expand(self.engine, job.id, study_uids, archive.name)
        log.info("retrieve job %d: %d stud(ies) in %s", job.id, len(study_uids), archive)

    async def _study(self, job: jobs.Job) -> None:
        uid = job.study_uid
        assert uid is not None
        located = await self._first_archive(job, lambda client: client.study_instances(uid))
        if located is None:
            await jobs.record(self.engine, job.id, state=jobs.NOT_FOUND,
                              error=f"study {uid} is in none of the archives ({self._names()})")
            return
        archive, remote = located
        present = await self._stored(uid) & set(remote)
        before = job.instances_present_before if job.instances_present_before is not None else len(present)
        await jobs.record(self.engine, job.id, archive=archive.name, instances_expected=len(remote),
                          instances_present_before=before, instances_retrieved=max(len(present) - before, 0))
        missing = set(remote) - present
        if missing:
            if archive.method == "move" and not self.settings.dimse_port:
                raise AttemptFailed(f"archive {archive} sends by C-MOVE, but this server has no DIMSE port")
            await self._fetch(job, archive, uid, remote, missing, before)
        arrived = await self._stored(uid) & set(remote)
        await jobs.record(self.engine, job.id, instances_retrieved=len(arrived) - before)
        if len(arrived) < len(remote):
            raise AttemptFailed(f"{len(remote) - len(arrived)} of {len(missing)} instances did not arrive from "
                                f"archive {archive}")
        await jobs.record(self.engine, job.id, state=jobs.DONE, error=None)
        log.info("retrieve job %d: study %s done (%d present, %d retrieved from %s)", job.id, uid, before,
                 len(arrived) - before, archive)

    async def _fetch(self, job: jobs.Job, archive: Archive, uid: str, remote: Instances, missing: set[str],
                     before: int) -> None:
        requests = retrieve_requests(uid, remote, missing)
        client = self._client(archive)
        progress = asyncio.create_task(self._progress(job.id, uid, set(remote), before))
        try:
            if archive.method == "get":
                classes = {remote[sop][1] for sop in missing if remote[sop][1]}
                await self._on(archive, client.get, requests, classes, self._store_from(archive))
            else:
                await self._on(archive, client.move, requests, self.settings.ae_title)
        finally:
            await cancel(progress)

    async def _progress(self, job_id: int, uid: str, remote: set[str], before: int) -> None:
        while True:
            await asyncio.sleep(PROGRESS_SECONDS)
            arrived = await self._stored(uid) & remote
            await jobs.record(self.engine, job_id, instances_retrieved=len(arrived) - before)

    def _store_from(self, archive: Archive):
        """C-GET's store callback (in the association's thread): the ingest service, on the loop."""
        bridge = Bridge(asyncio.get_running_loop())

        def store(ds: Dataset) -> int:
            try:
                bridge.call(self.ingest.store(ds, source_ae=archive.aet, source_host=archive.host,
                                              receiving_ae=self.settings.ae_title))
            except ValueError as exc:  # IngestError: refused with a reason
                log.info("C-GET from %s: instance refused: %s", archive, exc)
                return Storage.DATASET_DOES_NOT_MATCH_SOP_CLASS
            except Exception:
                log.exception("C-GET from %s: storing an instance failed", archive)
                return Storage.CANNOT_UNDERSTAND
            return Storage.SUCCESS

        return store

    async def _stored(self, study_uid: str) -> set[str]:
        return {row["sop_instance_uid"] for row in await catalog.instance_rows(self.engine, study_uid)}

    def _names(self) -> str:
        return ", ".join(a.name for a in self.archives)


async def in_daemon_thread(fn: Any, *args: Any) -> Any:
    """``fn(*args)`` in a daemon thread: an archive that never answers (until the DIMSE timeouts)
    holds up neither the loop nor the process when it stops."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if not future.done():
            future.set_exception(error) if error is not None else future.set_result(result)

    def run() -> None:
        try:
            result, error = fn(*args), None
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=run, name="ups-retrieve", daemon=True).start()
    return await future
