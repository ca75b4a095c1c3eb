"""Prometheus metrics of one server process (``GET /metrics``).

Counters and histograms are counted where things happen (HTTP front layer, UPS state changes,
ingest, rules, event delivery); they are per process, so that Prometheus sums them over nodes.
Gauges are read when scraped: pool and DIMSE use of this process, and queue depths of the
database the nodes share (the same on every node).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from sqlalchemy import Text, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import Scope

from .config import Settings
from .db.tables import blob_uploads, event_outbox, retrieve_jobs
from .ups.attributes import CANCELED, COMPLETED, IN_PROGRESS, SCHEDULED

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from .ups.service import Change

REGISTRY = CollectorRegistry()
for _collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
    REGISTRY.register(_collector)

HTTP_REQUESTS = Counter("ups_http_requests", "HTTP requests answered, by method, route and status",
                        ["method", "route", "status"], registry=REGISTRY)
HTTP_LATENCY = Histogram("ups_http_request_duration_seconds", "time to answer an HTTP request (to the last byte)",
                         ["method", "route"], registry=REGISTRY,
                         buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30))
CLAIMS = Counter("ups_claims", "workitems claimed (SCHEDULED -> IN PROGRESS)", registry=REGISTRY)
COMPLETIONS = Counter("ups_completions", "workitems that reached a final state, by state", ["state"],
                      registry=REGISTRY)
RULE_EFFECTS = Counter("ups_rule_effects", "workitems rules created or appended to, and rule failures",
                       ["rule", "effect"], registry=REGISTRY)
INGEST_INSTANCES = Counter("ups_ingest_instances", "instances received, by outcome (stored, duplicate, refused)",
                           ["outcome"], registry=REGISTRY)
INGEST_BYTES = Counter("ups_ingest_bytes", "bytes of newly stored instances", registry=REGISTRY)
EVENT_LAG = Histogram("ups_event_delivery_lag_seconds", "time from an event's commit to its delivery, by channel",
                      ["channel"], registry=REGISTRY, buckets=(.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 60, 300))
DIMSE_ASSOCIATIONS = Gauge("ups_dimse_associations", "DIMSE associations open on this process",
                           registry=REGISTRY)
DB_POOL = Gauge("ups_db_pool_connections", "database connections of this process, by state (in_use, idle)",
                ["state"], registry=REGISTRY)
OUTBOX_DEPTH = Gauge("ups_outbox_pending", "event rows not yet delivered, by channel (websocket, dimse)",
                     ["channel"], registry=REGISTRY)
OUTBOX_OLDEST = Gauge("ups_outbox_oldest_pending_seconds", "age of the oldest undelivered event row, by channel",
                      ["channel"], registry=REGISTRY)
JOBS = Gauge("ups_jobs", "background work in the database, by queue and state (retrieve jobs; blob uploads "
             "not yet indexed)", ["queue", "state"], registry=REGISTRY)


async def on_change(conn: AsyncConnection, change: Change) -> None:
    """UPSService listener: claims and final states (counted in the change's transaction)."""
    if change.kind != "state":
        return
    if change.previous_state == SCHEDULED and change.state == IN_PROGRESS and change.row.get("state") == IN_PROGRESS:
        CLAIMS.inc()  # not the IN PROGRESS step of an SCP-side cancel
    elif change.state in (COMPLETED, CANCELED):
        COMPLETIONS.labels(change.state).inc()


def claimed(change: Change) -> None:
    """``on_change`` of a claim by claim-next, told after its commit (a ClaimHook ``after``)."""
    CLAIMS.inc()


async def refresh(engine: AsyncEngine | None, settings: Settings, dimse: Any) -> None:
    """Read the gauges: this process's pool and associations (``dimse``: the DimseServer or None),
    the shared queues' depths."""
    if engine is not None:
        pool = engine.pool
        in_use = pool.checkedout()  # type: ignore[attr-defined]
        DB_POOL.labels("in_use").set(in_use)
        DB_POOL.labels("idle").set(pool.checkedin())  # type: ignore[attr-defined]
        await _queues(engine, settings)
    listeners = [getattr(dimse, name, None) for name in ("_listener", "_tls_listener")]
    DIMSE_ASSOCIATIONS.set(sum(len(lst.active_associations) for lst in listeners if lst is not None))


async def _queues(engine: AsyncEngine, settings: Settings) -> None:
    age = func.coalesce(func.extract("epoch", func.clock_timestamp() - func.min(event_outbox.c.created_at)), 0)
    dimse_aets = list(settings.ae_table)  # DIMSE receivers; the other AEs listen on WebSockets
    # rows still for a WebSocket subscriber other than a DIMSE receiver
    ws = ~event_outbox.c.ws_aets.contained_by(bindparam(None, dimse_aets, type_=ARRAY(Text)))
    async with engine.connect() as conn:
        for channel, where in (("websocket", ws), ("dimse", event_outbox.c.dimse_pending)):
            count, oldest = (await conn.execute(select(func.count(), age).where(where))).one()
            OUTBOX_DEPTH.labels(channel).set(count)
            OUTBOX_OLDEST.labels(channel).set(float(oldest))
        uploads = (await conn.execute(select(func.count()).select_from(blob_uploads))).scalar()
        JOBS.labels("blob_uploads", "unindexed").set(uploads or 0)
        states = dict((await conn.execute(select(retrieve_jobs.c.state, func.count())
                                          .group_by(retrieve_jobs.c.state))).all())
        for state in {"queued", "running", *states}:
            JOBS.labels("retrieve", state).set(states.get(state, 0))


async def endpoint(request: Request) -> Response:
    root = request.app.state.root  # the composition root (web.app.Root)
    await refresh(root.services.engine if root.services else None, root.settings, root.dimse)
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


def observe_http(scope: Scope, status: int, seconds: float) -> None:
    """Count an HTTP request by method, route template (never a raw path) and status, and its time
    to the last byte (a WADO-RS stream included). ``scope``: the one the router matched in."""
    route = scope.get("route")
    route = route.path if isinstance(route, (Route, WebSocketRoute)) else "unmatched"
    HTTP_REQUESTS.labels(scope["method"], route, str(status)).inc()
    HTTP_LATENCY.labels(scope["method"], route).observe(seconds)
