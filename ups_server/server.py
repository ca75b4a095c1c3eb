"""The running server: database, services, and the protocol front-ends, started and stopped together."""

from __future__ import annotations

import logging
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError

from . import metrics
from .auth.oidc import build_verifier
from .auth.settings import open_mode_warning
from .config import Settings
from .db import migrate
from .db.engine import Database
from .ingest.service import IngestService
from .ingest.setup import build_ingest
from .reading.skips import SkipGuard
from .ups.service import UPSService

log = logging.getLogger(__name__)


class Component(Protocol):
    """A part with a lifetime inside the server (DIMSE listener, event dispatcher, ...)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class Server:
    """Owns the database and the services; front-ends (HTTP, DIMSE) call into ``self.ups``.

    ``open()`` starts the (embedded) database, migrates, builds the services and starts the
    components; ``close()`` stops them in reverse order. The HTTP app calls both from its lifespan.
    """

    def __init__(self, settings: Settings, database: Database | None = None):
        self.settings = settings
        self.database = database or Database(settings.database_url, settings.data_dir, settings.db_pool_size)
        self._owns_database = database is None
        self.ups: UPSService | None = None
        self.ingest: IngestService | None = None  # stored instances + on_store rules
        self.rules = None  # the loaded rule set (rules.engine.RuleEngine)
        self.components: list[Component] = []
        self.dimse = None  # the DimseServer when settings.dimse_port is set
        self.events = None  # events.component.Events: subscriptions and event delivery
        self.retrieve = None  # retrieve.worker.RetrieveWorker: jobs pulling studies from the archives
        self.ready = False
        self.verifier = build_verifier(settings)  # OIDC bearer tokens (None: --auth none)

    async def open(self) -> None:
        warning = open_mode_warning(self.settings)
        if warning:
            log.warning(warning)
        if self.database.engine is None:
            self.database.start()
        engine = self.database.engine
        if self.settings.migrate:
            await migrate.upgrade(engine)
        self.ups = UPSService(engine, default_worklist_label=self.settings.worklist_label)
        self.ups.add_listener(metrics.on_change)
        self.ingest = build_ingest(self)
        await self.ingest.blobs.check()
        self.ups.claim_guards.append(SkipGuard(self.settings.skip_hold))
        self.components = self._build_components()
        for component in self.components:
            await component.start()
        self.ready = True
        log.info("ups-server ready")

    def _build_components(self) -> list[Component]:
        """The optional parts, in start order (rules before the front-ends that feed them)."""
        components: list[Component] = []
        if self.database.embedded is not None:  # first: it brings the database back for the others
            from .db.supervisor import EmbeddedSupervisor

            components.append(EmbeddedSupervisor(self.database))
        from .events.component import Events

        self.events = Events(self)
        if self.ingest is not None:
            self.events.housekeeper.jobs += [self.ingest.remove_orphans, self.ingest.remove_stale_spool]
        components.append(self.events)
        if self.settings.dimse_port or self.settings.dimse_tls_port:
            from .dimse.server import DimseServer

            self.dimse = DimseServer(self)
            components.append(self.dimse)
        from .retrieve.worker import RetrieveWorker

        # after DIMSE, so it stops first: stores of a C-MOVE under way still land
        self.retrieve = RetrieveWorker(self.database.engine, self.ingest, self.settings)
        components.append(self.retrieve)
        return components

    async def announce_shutdown(self) -> None:
        """Tell subscribers the SCP is GOING DOWN while their connections are still open (the
        HTTP server calls this before it closes WebSockets; ``close()`` does it otherwise)."""
        if self.events is not None:
            await self.events.announce_shutdown()

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
