"""Build the ingest service and attach the rules to it and to the UPS service."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .blobs import open_blob_store
from .parse import InflateLimits
from .service import IngestService

if TYPE_CHECKING:
    from ..server import Server


def build_ingest(server: Server) -> IngestService:
    """``server.ingest``: the store path; the rules (on_store, on_completed, claim guards) are
    loaded from ``settings.rules`` and wired in here."""
    assert server.ups is not None and server.database.engine is not None
    settings = server.settings
    ingest = IngestService(server.database.engine, open_blob_store(settings.blob_store, settings.data_dir),
                           settings.blob_orphan_grace,
                           InflateLimits(settings.max_inflated_size, settings.max_inflate_ratio))
    from ..audit.hooks import stored

    ingest.on_store.append(stored)  # the audit row of each stored study, in the store transaction
    try:
        from ..rules.wiring import install_rules
    except ImportError:  # rules engine not present
        return ingest
    server.rules = install_rules(server, ingest)  # type: ignore[attr-defined]
    return ingest
