"""Load the configured rules and attach them to the ingest and UPS services."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..config import Settings
from ..paths import rules_dir
from .engine import RuleEngine
from .guard import PerformerGuard
from .loader import load_rules
from .reconcile import Reconciler

if TYPE_CHECKING:
    from ..ingest.service import IngestService
    from ..server import Server
    from ..ups.service import UPSService

DEFAULT_RULES = "double-reading.yaml"


def rules_path(settings: Settings) -> Path:
    return Path(settings.rules) if settings.rules else rules_dir() / DEFAULT_RULES


def wado_base_url(settings: Settings) -> str:
    host = settings.host if settings.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    return f"http://{host}:{settings.http_port}{settings.base_path.rstrip('/')}"


def build_engine(settings: Settings, ups: UPSService) -> RuleEngine:
    """The RuleEngine for ``settings.rules`` (RuleFileError when a rule file is wrong)."""
    return RuleEngine(load_rules(rules_path(settings)), ups, settings.ae_title, wado_base_url(settings))


def install_rules(server: Server, ingest: IngestService) -> RuleEngine:
    assert server.ups is not None
    engine = build_engine(server.settings, server.ups)
    ingest.on_store.append(engine.on_store)
    ingest.on_delete.append(Reconciler(engine).on_delete)
    server.ups.add_listener(engine.on_change)
    server.ups.claim_guards.append(PerformerGuard())
    return engine
