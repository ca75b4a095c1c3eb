"""The ``ups-server`` command: serve, migrate, rules."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import sys
from pathlib import Path

from .config import Settings

log = logging.getLogger("ups_server")

# idle HTTP connections are kept this long: longer than common clients keep theirs (httpx: 5 s),
# so a client rarely reuses a connection at the instant the server closes it
KEEP_ALIVE_SECONDS = 30

DESCRIPTION = """\
ups-server: a DICOM UPS worklist server for double-reading workflows.

Studies arrive by STOW-RS or C-STORE; rules turn each study into UPS workitems;
readers search, claim and complete them over UPS-RS (HTTP + WebSocket) or DIMSE.
Every setting can also be given as an environment variable (UPS_<NAME>, e.g.
UPS_DATABASE_URL) or in a YAML file passed with --config (keys as the long flags).
Order of precedence: flag > environment > config file > default.
"""


def _add_settings_flags(parser: argparse.ArgumentParser, names: list[str]) -> None:
    parser.add_argument("--config", type=Path, help="YAML file of settings (env UPS_CONFIG)")
    defaults = Settings()
    for name in names:
        flag = "--" + name.replace("_", "-")
        help_text = f"{Settings.HELP[name]} (env {Settings.env_name(name)}; default: {getattr(defaults, name)})"
        if name == "archives":  # repeatable: --archive A=... --archive B=...
            parser.add_argument("--archive", dest=name, action="append", default=None, help=help_text)
        elif name == "migrate":
            parser.add_argument("--no-migrate", dest="migrate", action="store_const", const=False,
                                help=f"do not apply database migrations at start (env {Settings.env_name(name)}=false)")
        else:
            parser.add_argument(flag, dest=name, default=None, help=help_text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ups-server", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    all_settings = [f.name for f in dataclasses.fields(Settings)]
    db_settings = ["data_dir", "database_url", "log_level", "log_format"]

    serve = sub.add_parser("serve", help="run the server (HTTP and DIMSE)",
                           description="Run the server: UPS-RS, STOW/QIDO/WADO-RS over HTTP, and the DIMSE "
                                       "services, on PostgreSQL (embedded when no --database-url is given).")
    _add_settings_flags(serve, all_settings)

    mig = sub.add_parser("migrate", help="apply the database migrations and exit",
                         description="Apply the Alembic migrations to the database and exit.")
    _add_settings_flags(mig, db_settings)

    from .rules_cli import add_rules_parser  # rules check / apply, studies delete

    add_rules_parser(sub, lambda p: _add_settings_flags(p, db_settings + ["rules"]))
    from .retrieve.cli import add_retrieve_parser  # queue retrieve jobs on a running server

    add_retrieve_parser(sub)

    from .audit_cli import add_audit_parser  # audit export

    add_audit_parser(sub, lambda p: _add_settings_flags(p, db_settings))
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    names = {f.name for f in dataclasses.fields(Settings)}
    overrides = {k: v for k, v in vars(args).items() if k in names and v is not None}
    return Settings.load(args.config, overrides)


def setup_logging(level: str, fmt: str = "text") -> None:
    from .logs import configure

    configure(level, fmt)


def serve(settings: Settings) -> int:
    if settings.workers > 1:
        from .workers import serve_workers

        return serve_workers(settings)
    run_http(settings)
    return 0


def run_http(settings: Settings, sockets: list | None = None, *, primary: bool = True) -> None:
    """One server process: the services and uvicorn, on ``sockets`` when given (a worker of
    ``serve --workers N``: the parent bound the port) else on the configured host and port.
    uvicorn's "auto" loop and HTTP parser are uvloop and httptools (uvicorn[standard])."""
    import uvicorn

    from .auth import tls
    from .events.wire import FrameWriting
    from .server import Server
    from .web.app import create_app

    server = Server(settings, primary=primary)
    app = create_app(server)
    log.info("serving UPS-RS at %s://%s:%s%s", "https" if settings.tls_cert else "http", settings.host,
             settings.http_port, settings.base_path)

    class Uvicorn(uvicorn.Server):
        async def shutdown(self, sockets: list | None = None) -> None:
            # uvicorn closes the WebSockets before the lifespan shutdown: announce first
            try:
                await server.announce_shutdown()
            except Exception:
                log.exception("announcing the shutdown to subscribers failed")
            await super().shutdown(sockets)

    # proxy_headers off: X-Forwarded-* are honoured by the app, from --trusted-proxies only;
    # no permessage-deflate: event frames are small, and compressing each one for each subscriber
    # cost more CPU than sending it (py-spy, 1,000 subscribers); FrameWriting: the event dispatcher
    # writes each event's frame, encoded once, to every subscriber's socket (events/wire.py)
    config = uvicorn.Config(app, host=settings.host, port=settings.http_port, log_level="warning", log_config=None,
                            lifespan="on", ws=FrameWriting, ws_per_message_deflate=False,
                            timeout_graceful_shutdown=5,
                            timeout_keep_alive=KEEP_ALIVE_SECONDS, proxy_headers=False,
                            **tls.uvicorn_options(settings))
    Uvicorn(config).run(sockets=sockets)


def migrate_only(settings: Settings) -> int:
    from .db import migrate
    from .db.engine import Database

    database = Database(settings.database_url, settings.data_dir)

    async def run() -> None:
        database.start()
        try:
            await migrate.upgrade(database.engine)
        finally:
            await database.dispose()

    try:
        asyncio.run(run())
    finally:
        database.stop()
    print(f"database migrated to revision {migrate.head_revision()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = settings_from(args)
    except (ValueError, OSError) as exc:
        parser.error(str(exc))
    setup_logging(settings.log_level, settings.log_format)
    if args.command == "serve":
        return serve(settings)
    if args.command == "migrate":
        return migrate_only(settings)
    return args.handler(args, settings)


if __name__ == "__main__":
    sys.exit(main())
