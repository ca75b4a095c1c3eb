"""The archives studies are pulled from, in order (the first is the primary).

One archive is ``NAME=AET@host:port[?method=move|get][&associations=N]``: ``method=move`` (the
default) asks the archive to C-MOVE the instances to this server's own AE title, ``method=get``
fetches them over the query association (C-GET); ``associations`` bounds the associations this
process opens to it at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl

DEFAULT_ASSOCIATIONS = 2
METHODS = ("move", "get")
_SPEC = re.compile(r"^(?P<name>[^=\s]+)=(?P<aet>[^@\s]{1,16})@(?P<host>[^:\s]+):(?P<port>\d{1,5})(?:\?(?P<query>.*))?$")
FORM = "NAME=AET@host:port[?method=move|get][&associations=N]"


@dataclass(frozen=True)
class Archive:
    name: str
    aet: str
    host: str
    port: int
    method: str = "move"
    associations: int = DEFAULT_ASSOCIATIONS

    def __str__(self) -> str:
        return f"{self.name} ({self.aet}@{self.host}:{self.port})"


def parse_archive(spec: str) -> Archive:
    """One archive from its text form; ValueError saying what is wrong."""
    m = _SPEC.match(spec.strip())
    if not m:
        raise ValueError(f"archive {spec!r}: expected {FORM}")
    options = dict(parse_qsl(m["query"] or "", keep_blank_values=True))
    unknown = set(options) - {"method", "associations"}
    if unknown:
        raise ValueError(f"archive {spec!r}: unknown option(s) {', '.join(sorted(unknown))} (expected {FORM})")
    method = options.get("method", "move").lower()
    if method not in METHODS:
        raise ValueError(f"archive {spec!r}: method must be move or get, not {method!r}")
    try:
        associations = int(options.get("associations", DEFAULT_ASSOCIATIONS))
    except ValueError:
        associations = 0
    if associations < 1:
        raise ValueError(f"archive {spec!r}: associations must be a whole number of at least 1")
    port = int(m["port"])
    if not 0 < port < 65536:
        raise ValueError(f"archive {spec!r}: port {port} is not a TCP port")
    return Archive(m["name"], m["aet"], m["host"], port, method, associations)


def parse_archives(specs: list[str]) -> list[Archive]:
    archives = [parse_archive(spec) for spec in specs]
    names = [a.name for a in archives]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(f"archive name(s) given more than once: {', '.join(duplicated)}")
    return archives
