"""``ups-server audit export --since ... [--until ...] [--format csv|json] [--output FILE]``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

from .config import Settings


def add_audit_parser(sub, add_settings: Callable[[argparse.ArgumentParser], None]) -> None:
    audit = sub.add_parser("audit", help="export the audit trail")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True, metavar="SUBCOMMAND")
    export = audit_sub.add_parser(
        "export", help="write audit rows as CSV or JSON",
        description="Write the audit rows recorded from --since (until --until) in time order.")
    export.add_argument("--since", required=True, help="ISO 8601 date or date-time (UTC if no offset)")
    export.add_argument("--until", help="ISO 8601 date or date-time (exclusive)")
    export.add_argument("--subject", help="only this subject")
    export.add_argument("--format", choices=("csv", "json"), default="csv")
    export.add_argument("--output", type=Path, help="file to write (default: standard output)")
    add_settings(export)
    export.set_defaults(handler=run_export)


def run_export(args: argparse.Namespace, settings: Settings) -> int:
    from .audit.query import export, parse_time, search
    from .db.engine import Database

    try:
        since, until = parse_time(args.since, "--since"), parse_time(args.until, "--until")
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    database = Database(settings.database_url, settings.data_dir)

    async def run() -> str:
        database.start()
        try:
            rows = await search(database.engine, subject=args.subject, since=since, until=until)
        finally:
            await database.dispose()
        return export(rows, args.format)

    try:
        text = asyncio.run(run())
    finally:
        database.stop()
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0
