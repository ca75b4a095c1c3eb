"""The composition root: the database, the services and the network parts, built here in
explicit order and handed only what each uses; started and stopped together.

No other module imports ``Server``: components receive ``Services`` and ``Settings``. The
``rules apply`` CLI uses the same root without the network parts (``network=False``).
"""

from __future__ import annotations

import logging
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from . import metrics
from .audit.hooks import claim_params as audit_claim_params
from .audit.hooks import claim_sql as audit_claim_sql
from .audit.hooks import stored as audit_stored
from .audit.hooks import workitem_changed as audit_workitem_changed
from .auth.oidc import build_verifier
from .auth.settings import open_mode_warning
from .config import Settings
from .db import migrate
from .db.engine import Database
from .db.supervisor import EmbeddedSupervisor
from .dimse.server import DimseServer
from .events.component import Events
from .events.subscriptions import SUBSCRIBERS, SUBSCRIBERS_OF_ROW
from .ingest.blobs import open_blob_store
from .ingest.parse import InflateLimits
from .ingest.service import IngestService
from .reading.skips import SkipGuard
from .retrieve.worker import RetrieveWorker
from .rules.access import AccessPolicy
from .rules.guard import DistinctReaderGuard, PerformerGuard
from .rules.reconcile import Reconciler
from .rules.wiring import build_engine
from .services import Services
from .ups.service import ClaimHook, UPSService

log = logging.getLogger(__name__)


class Component(Protocol):
    """A part with a lifetime inside the server (DIMSE listener, event dispatcher, ...)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def build_services(settings: Settings, engine: AsyncEngine, *, primary: bool = True) -> Services:
    """The services, in dependency order (``primary``: see ``Server``). Listeners run in the order added, inside the change's
    transaction: metrics count claims and completions; the rules subscribe to ingest (on_store,
    after the audit row) and to UPS changes (on_completed) and guard claims; the events listener
    turns every change into outbox rows."""
    ups = UPSService(engine, default_worklist_label=settings.worklist_label)
    # each listener's ClaimHook: what it does for a claim-next, which then runs as one statement
    ups.add_listener(metrics.on_change, claim=ClaimHook(after=metrics.claimed))
    ingest = IngestService(engine, open_blob_store(settings.blob_store, settings.data_dir),
                           settings.blob_orphan_grace,
                           InflateLimits(settings.max_inflated_size, settings.max_inflate_ratio))
    ingest.on_store.append(audit_stored)  # the audit row of each stored study, in the store transaction
    rules = build_engine(settings, ups)  # RuleFileError when a rule file is wrong
    ingest.on_store.append(rules.on_store)
    ingest.on_delete.append(Reconciler(rules).on_delete)  # a deleted study's workitems
    ups.access = AccessPolicy()  # roles, claim roles, blind reading, worklists (issue 10)
    ups.add_listener(audit_workitem_changed,  # the audit row of each change a principal asks for
                     claim=ClaimHook(sql=audit_claim_sql, params=audit_claim_params))
    ups.add_listener(rules.on_change, claim=ClaimHook())  # rules react to final states, not to claims
    ups.claim_guards += [PerformerGuard(), DistinctReaderGuard()]
    ups.claim_guards.append(SkipGuard(settings.skip_hold))  # a skipped read is not offered back at once
    events = Events(engine, settings, status_changes=primary)
    ups.add_listener(events.on_change, events.on_changes, row_columns={SUBSCRIBERS: SUBSCRIBERS_OF_ROW},
                     claim=ClaimHook(sql=events.claim_sql, params=events.claim_params))
    events.housekeeper.jobs += [ingest.remove_orphans, ingest.remove_stale_spool]
    retrieve = RetrieveWorker(engine, ingest, settings)
    return Services(engine=engine, ups=ups, ingest=ingest, events=events, rules=rules, retrieve=retrieve)


class Server:
    """Owns the database, the services and (with ``network``) the components that serve them.

    ``open()`` starts the (embedded) database, migrates, builds the services and starts the
    components; ``close()`` stops them in reverse order. The HTTP app calls both from its lifespan.
    Without ``network`` nothing listens or delivers: the events service still writes the outbox
    rows (in the rules' transactions) that a running server delivers. Of several worker processes
    of one ``serve --workers N`` only the ``primary`` one announces the SCP status changes
    (RESTARTED, GOING DOWN): the subscribers hear of one restart, not of N.
    """

    def __init__(self, settings: Settings, database: Database | None = None, *, network: bool = True,
                 primary: bool = True):
        self.settings = settings
        self.primary = primary
        self.database = database or Database(settings.database_url, settings.data_dir, settings.db_pool_size)
        self._owns_database = database is None
        self.network = network
        self.services: Services | None = None
        self.components: list[Component] = []
        self.dimse: DimseServer | None = None  # when settings.dimse_port is set
        self.ready = False
        self.verifier = build_verifier(settings)  # OIDC bearer tokens (None: --auth none)

    # the services by name, for callers that hold the root (tests, the CLI)
    @property
    def ups(self) -> UPSService:
        return self._services.ups

    @property
    def ingest(self) -> IngestService:
        return self._services.ingest

    @property
    def events(self) -> Events:
        return self._services.events

    @property
    def _services(self) -> Services:
        if self.services is None:
            raise RuntimeError("the server is not open")
        return self.services

    async def open(self) -> None:
        warning = open_mode_warning(self.settings)
        if warning:
            log.warning(warning)
        if self.database.engine is None:
            self.database.start()
        engine = self.database.engine
        if self.settings.migrate:
            await migrate.upgrade(engine)
        self.services = build_services(self.settings, engine, primary=self.primary)
        await self.services.ingest.blobs.check()
        self.components = self._network_components(self.services) if self.network else []
        for component in self.components:
            await component.start()
        self.ready = True
        log.info("ups-server ready")

    def _network_components(self, services: Services) -> list[Component]:
        """In start order: the embedded database's supervisor (it brings the database back for
        the others), event delivery, the DIMSE listener(s), the retrieve jobs (after DIMSE, so
        they stop first: stores of a C-MOVE under way still land)."""
        components: list[Component] = []
        if self.database.embedded is not None:
            components.append(EmbeddedSupervisor(self.database))
        components.append(services.events)
        if self.settings.dimse_port or self.settings.dimse_tls_port:
            self.dimse = DimseServer(services, self.settings, self.verifier)
            components.append(self.dimse)
        components.append(services.retrieve)
        return components

    async def announce_shutdown(self) -> None:
        """Tell subscribers the SCP is GOING DOWN while their connections are still open (the
        HTTP server calls this before it closes WebSockets; ``close()`` does it otherwise)."""
        if self.services is not None and self.network:
            await self.services.events.announce_shutdown()

    async def close(self) -> None:
        self.ready = False
        for component in reversed(self.components):
            try:
                await component.stop()
            except Exception:  # keep stopping the others
                log.exception("error stopping %s", component)
        self.components = []
        if self._owns_database:
            await self.database.dispose()
            self.database.stop()

    async def schema_ok(self) -> bool:
        """True when the database answers and is migrated to the head revision."""
        try:
            return await migrate.current_revision(self.database.engine) == migrate.head_revision()
        except (OSError, SQLAlchemyError):
            return False
