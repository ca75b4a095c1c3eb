"""``Services``: the domain services the protocol adapters call, built by the root (``server.py``)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from .events.component import Events
from .ingest.service import IngestService
from .retrieve.worker import RetrieveWorker
from .rules.engine import RuleEngine
from .ups.service import UPSService


@dataclass(frozen=True)
class Services:
    engine: AsyncEngine  # the database (audit trail, job and queue queries)
    ups: UPSService  # workitems (PS3.4 Annex CC)
    ingest: IngestService  # stored instances
    events: Events  # subscriptions and event delivery
    rules: RuleEngine  # the loaded rule set (subscribed to ingest and to UPS changes)
    retrieve: RetrieveWorker  # retrieve jobs (pulling studies from the archives)
