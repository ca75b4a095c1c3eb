"""Where the bundled migrations and rules live, installed or in a source checkout."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

_SOURCE_ROOT = Path(__file__).resolve().parent.parent


def _bundled(package: str, source_dir: str) -> Path:
    try:
        path = Path(str(resources.files(package)))
        if path.is_dir():
            return path
    except ModuleNotFoundError:
        pass
    return _SOURCE_ROOT / source_dir


def migrations_dir() -> Path:
    return _bundled("ups_server.migrations", "migrations")


def rules_dir() -> Path:
    return _bundled("ups_server.bundled_rules", "rules")
