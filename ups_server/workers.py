"""``ups-server serve --workers N``: N HTTP worker processes on one listening socket.

The parent does what must happen once, before any worker exists: it starts the embedded
PostgreSQL (when no database URL is given), applies the migrations, and binds the HTTP port.
Then it spawns the workers; each is a whole ``ups-server`` process (services, event delivery,
housekeeping, retrieve jobs) on that database with migrations off, accepting connections on the
inherited socket. State lives in PostgreSQL; events cross the processes as between separate
servers (the outbox rows, and a NOTIFY that wakes every process's dispatchers).

DIMSE runs in worker 1 alone (a port is bound once): a worker has the services and the asyncio
loop DIMSE handlers call into, so the parent stays a small supervisor outside every request. That
worker also announces the SCP status changes (RESTARTED, GOING DOWN) for the whole server.

The parent supervises: a worker that dies is started again (a worker that dies within
``FAILED_START_SECONDS`` of its start stops the server: it would only die again), and the
embedded PostgreSQL is started again when it dies. On SIGTERM or SIGINT each worker gets SIGTERM
and shuts down gracefully (GOING DOWN, last event delivery, open requests finish); then the
parent stops the embedded PostgreSQL.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from multiprocessing.process import BaseProcess

from .config import Settings
from .db import migrate
from .db.engine import Database
from .db.supervisor import EmbeddedSupervisor
from .events.tasks import wait_or_timeout

log = logging.getLogger(__name__)

FAILED_START_SECONDS = 10.0
STOP_SECONDS = 30.0  # a worker still running this long after SIGTERM is killed
CHECK_SECONDS = 0.5


def bind(host: str, port: int) -> socket.socket:
    """The listening socket the workers share (SO_REUSEADDR, as uvicorn binds its own)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def worker_settings(settings: Settings, database_url: str, index: int) -> Settings:
    """What worker ``index`` (0-based) runs with: the parent's database, no migrations, DIMSE
    only in worker 0."""
    dimse = {} if index == 0 else {"dimse_port": 0, "dimse_tls_port": None}
    return dataclasses.replace(settings, database_url=database_url, migrate=False, workers=1, **dimse)


def _worker(settings: Settings, sock: socket.socket, index: int, parent: int) -> None:
    """The body of a worker process (spawned: a fresh interpreter)."""
    from .cli import run_http, setup_logging

    setup_logging(settings.log_level, settings.log_format)
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    run_http(settings, [sock], primary=index == 0)


def _exit_with_parent(parent: int) -> None:
    """A worker whose parent died (SIGKILL) shuts down gracefully rather than hold the port alone."""
    while os.getppid() == parent:
        time.sleep(1)
    os.kill(os.getpid(), signal.SIGTERM)


class Workers:
    """The parent of ``serve --workers N``."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.database = Database(settings.database_url, settings.data_dir, pool_size=1)
        self.context = multiprocessing.get_context("spawn")  # no asyncio or thread state forked
        self.processes: list[BaseProcess | None] = [None] * settings.workers
        self.started: list[float] = [0.0] * settings.workers
        self.stopping = asyncio.Event()
        self.failed = False

    def run(self) -> int:
        engine = self.database.start()  # the embedded PostgreSQL, once
        try:
            if self.settings.migrate:
                asyncio.run(self._migrate(engine))
            sock = bind(self.settings.host, self.settings.http_port)
            try:
                asyncio.run(self._supervise(sock))
            finally:
                sock.close()
        finally:
            self.database.stop()
        return 1 if self.failed else 0

    async def _migrate(self, engine) -> None:
        try:
            await migrate.upgrade(engine)
        finally:
            await engine.dispose()

    def _spawn(self, index: int, sock: socket.socket) -> None:
        settings = worker_settings(self.settings, self.database.url, index)
        process = self.context.Process(target=_worker, args=(settings, sock, index, os.getpid()), name=f"ups-server-worker-{index + 1}")
        process.start()
        self.processes[index] = process
        self.started[index] = time.monotonic()
        log.info("worker %d started (pid %s)", index + 1, process.pid)

    async def _supervise(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        self.database.engine = None  # disposed after the migrations; the supervisor needs none
        supervisor = EmbeddedSupervisor(self.database) if self.database.embedded is not None else None
        if supervisor is not None:
            await supervisor.start()
        try:
            for index in range(len(self.processes)):
                self._spawn(index, sock)
            while not self.stopping.is_set():
                if not await wait_or_timeout(self.stopping, CHECK_SECONDS):
                    self._replace_dead(sock)
        finally:
            await asyncio.to_thread(self._stop_all)
            if supervisor is not None:
                await supervisor.stop()

    def _replace_dead(self, sock: socket.socket) -> None:
        for index, process in enumerate(self.processes):
            if process is None or process.is_alive():
                continue
            if time.monotonic() - self.started[index] < FAILED_START_SECONDS:
                log.error("worker %d (pid %s) exited with %s right after its start: stopping the server",
                          index + 1, process.pid, process.exitcode)
                self.failed = True
                self.stopping.set()
                return
            log.error("worker %d (pid %s) exited with %s: starting it again", index + 1, process.pid,
                      process.exitcode)
            self._spawn(index, sock)

    def _stop_all(self) -> None:
        running = [p for p in self.processes if p is not None and p.is_alive()]
        for process in running:
            process.terminate()  # SIGTERM: uvicorn's graceful shutdown
        deadline = time.monotonic() + STOP_SECONDS
        for process in running:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.error("worker pid %s did not stop within %.0f s: killing it", process.pid, STOP_SECONDS)
                process.kill()
                process.join()
        log.info("all %d workers stopped", len(running))


def serve_workers(settings: Settings) -> int:
    return Workers(settings).run()
