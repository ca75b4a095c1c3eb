"""Load the configured rules (the root, ``server.py``, subscribes them to ingest and UPS changes)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..config import Settings
from ..paths import rules_dir
from .engine import RuleEngine
from .loader import load_rules

if TYPE_CHECKING:
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

