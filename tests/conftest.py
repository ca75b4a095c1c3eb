"""Fixtures: a real PostgreSQL (embedded, or UPS_TEST_DATABASE_URL), one fresh database per
test cloned from a migrated template, and the real server on real sockets."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import os
import shutil
import socket
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import uvicorn
from sqlalchemy import text

from ups_server.cli import KEEP_ALIVE_SECONDS
from ups_server.config import Settings
from ups_server.db import migrate
from ups_server.db.embedded import EmbeddedPostgres
from ups_server.db.engine import Database, make_engine
from ups_server.server import Server
from ups_server.web.app import create_app

_TEMPLATE = "ups_test_template"
_counter = itertools.count()


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def pg_admin_url():
    """URL of a database on the test cluster from which test databases are created."""
    external = os.environ.get("UPS_TEST_DATABASE_URL")
    if external:
        yield external.replace("postgresql://", "postgresql+asyncpg://", 1)
        return
    with tempfile.TemporaryDirectory(prefix="ups-test-pg-") as tmp:
        embedded = EmbeddedPostgres(Path(tmp))
        url = embedded.start()
        try:
            yield url
        finally:
            embedded.stop()


@pytest.fixture(scope="session")
async def template_url(pg_admin_url):
    admin = make_engine(pg_admin_url, pool_size=1).execution_options(isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f"DROP DATABASE IF EXISTS {_TEMPLATE}"))
        await conn.execute(text(f"CREATE DATABASE {_TEMPLATE}"))
    await admin.dispose()
    url = _with_database(pg_admin_url, _TEMPLATE)
    engine = make_engine(url, pool_size=1)
    await migrate.upgrade(engine)
    await engine.dispose()
    return url


@pytest.fixture
async def database_url(pg_admin_url, template_url):
    """A fresh, migrated database for one test."""
    name = f"ups_test_{os.getpid()}_{next(_counter)}"
    admin = make_engine(pg_admin_url, pool_size=1).execution_options(isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f"CREATE DATABASE {name} TEMPLATE {_TEMPLATE}"))
    yield _with_database(pg_admin_url, name)
    async with admin.connect() as conn:
        await conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    await admin.dispose()


@pytest.fixture(scope="session")
def oidc_issuer():
    """A real OIDC issuer (tests/oidc_issuer.py) for the tests marked ``pytest.mark.oidc``."""
    from .oidc_issuer import Issuer

    issuer = Issuer()
    yield issuer
    issuer.close()


@pytest.fixture(scope="module")
def issuer():
    """A real OIDC issuer of the module's own (tests/oidc_issuer.py), for tests that set up
    ``--auth oidc`` themselves (keys rotated or tokens minted per module)."""
    from .oidc_issuer import Issuer

    issuer = Issuer()
    yield issuer
    issuer.close()


@pytest.fixture
def settings(database_url, tmp_path, request) -> Settings:
    """Settings of a server under test; a module marked ``pytest.mark.dimse`` gets a DIMSE port, a
    test marked ``pytest.mark.oidc`` runs under ``--auth oidc`` with ``oidc_issuer``."""
    dimse = request.node.get_closest_marker("dimse") is not None
    settings = Settings(database_url=database_url, data_dir=tmp_path, dimse_port=free_port() if dimse else 0,
                        http_port=free_port(), db_pool_size=40)
    if request.node.get_closest_marker("oidc") is not None:
        from .oidc_issuer import AUDIENCE

        issuer = request.getfixturevalue("oidc_issuer")
        settings = dataclasses.replace(settings, auth="oidc", oidc_issuer=issuer.url, oidc_audience=AUDIENCE)
    return settings


@pytest.fixture
async def server(settings):
    """The opened Server (database, services, components) without HTTP."""
    srv = Server(settings, Database(settings.database_url, settings.data_dir, settings.db_pool_size))
    await srv.open()
    try:
        yield srv
    finally:
        await srv.close()
        await srv.database.dispose()


@pytest.fixture
async def base_url(server):
    """A real uvicorn serving ``server`` on a free loopback port; yields the DICOMweb base URL."""
    app = create_app(server, manage_server=False)
    config = uvicorn.Config(app, host="127.0.0.1", port=server.settings.http_port, log_level="warning",
                            lifespan="on", ws="websockets-sansio", backlog=1024, proxy_headers=False,
                            timeout_keep_alive=KEEP_ALIVE_SECONDS)  # as `serve` keeps idle connections
    web = uvicorn.Server(config)
    task = asyncio.create_task(web.serve())
    while not web.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    yield f"http://127.0.0.1:{server.settings.http_port}{server.settings.base_path}"
    web.should_exit = True
    await task


@pytest.fixture
async def http(base_url):
    # Idle connections expire on the client well before the server's keep-alive timeout closes them
    # (reusing one the server closes at that instant would be a ReadError), and far above the event
    # loop's stalls under load (2-8 s measured at load 15-18): httpcore 1.0.9's pool closes an idle
    # connection whose expiry passed even when it has just handed it to a request that has not
    # started yet (encode/httpcore#1110); that request then sends on it and its read fails (ReadError
    # from ClosedResourceError: the client closed its own socket), which a 2 s expiry made possible.
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200,
                          keepalive_expiry=KEEP_ALIVE_SECONDS / 2)
    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as client:
        yield client


@pytest.fixture(scope="session")
def moto_endpoint():
    """A real S3 endpoint (moto's server) on a loopback port, for the whole session."""
    from .s3 import moto_server

    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def bucket(moto_endpoint, monkeypatch):
    """A new bucket; the AWS environment of this process points at it (as a node's would)."""
    from .s3 import new_bucket

    created = new_bucket(moto_endpoint)
    for name, value in created.environ.items():
        monkeypatch.setenv(name, value)
    return created


# --- the reading page: a real headless Chromium (Debian's chromium, never a downloaded browser)
CHROMIUM = os.environ.get("UPS_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="session")
async def chromium():
    playwright_api = pytest.importorskip("playwright.async_api", reason="pip install playwright (the test extra)")
    if not os.path.exists(CHROMIUM):
        pytest.skip("no chromium: apt-get install chromium (.ci/run does)")
    async with playwright_api.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
async def ui_url(base_url, server):
    """The reading page of the server under test."""
    return base_url.removesuffix(server.settings.base_path) + "/ui/"


@pytest.fixture
async def new_page(chromium):
    """new_page() -> a page in a fresh browser context (its own localStorage: another workstation)."""
    contexts = []

    async def make():
        context = await chromium.new_context(viewport={"width": 1400, "height": 900}, accept_downloads=True)
        contexts.append(context)
        page = await context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        return page

    errors: list[str] = []
    yield make
    for context in contexts:
        await context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
