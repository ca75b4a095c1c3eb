"""``ups-server rules check FILE...`` and ``ups-server rules apply --study UID | --all [--dry-run]``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

from .config import Settings


def add_rules_parser(sub, add_settings: Callable[[argparse.ArgumentParser], None]) -> None:
    rules = sub.add_parser("rules", help="check rule files, re-apply rules to stored studies")
    rules_sub = rules.add_subparsers(dest="rules_command", required=True, metavar="SUBCOMMAND")
    check = rules_sub.add_parser("check", help="validate rule files (exit 1 on any error)",
                                 description="Validate rule files or directories; every problem is printed as "
                                             "FILE:LINE: FIELD: MESSAGE.")
    check.add_argument("files", nargs="+", type=Path)
    check.set_defaults(handler=run_check, config=None)
    apply = rules_sub.add_parser(
        "apply", help="re-evaluate the on_store rules for stored studies",
        description="Re-evaluate the on_store rules (--rules, default the bundled rules) for stored studies: "
                    "creates missing workitems and appends missing references, never duplicates.")
    target = apply.add_mutually_exclusive_group(required=True)
    target.add_argument("--study", action="append", metavar="UID", help="a Study Instance UID (repeatable)")
    target.add_argument("--all", action="store_true", help="every stored study")
    apply.add_argument("--dry-run", action="store_true", help="report what would change, change nothing")
    add_settings(apply)
    apply.set_defaults(handler=run_apply)


def run_check(args: argparse.Namespace, settings: Settings) -> int:
    from .rules.errors import RuleFileError
    from .rules.loader import load_rules

    try:
        rules = load_rules(*args.files)
    except RuleFileError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"{len(exc.problems)} error(s)", file=sys.stderr)
        return 1
    print(f"ok: {len(rules.files)} file(s), {len(rules.on_store)} on_store and "
          f"{len(rules.on_completed)} on_completed rule(s)")
    return 0


class _RulesOnlyServer:
    """The database, the UPS service and the rules, without the network front-ends."""

    @staticmethod
    def make(settings: Settings):
        from .server import Server

        class Headless(Server):
            def _build_components(self):
                """No listeners or dispatchers for a CLI run; the event listener still writes
                the outbox rows (in the rules' transactions) that the running server delivers."""
                try:
                    from .events.component import Events
                except ImportError:
                    return []
                self.events = Events(self)
                return []

        return Headless(settings)


def run_apply(args: argparse.Namespace, settings: Settings) -> int:
    from .ingest import catalog
    from .rules.errors import RuleFileError
    from .rules.replay import replay_study

    server = _RulesOnlyServer.make(settings)

    async def run() -> int:
        try:
            await server.open()
        except RuleFileError as exc:
            for problem in exc.problems:
                print(problem, file=sys.stderr)
            return 1
        try:
            engine = server.database.engine
            studies = args.study or await catalog.study_uids(engine)
            failures = 0
            for study in studies:
                report = await replay_study(engine, server.rules, study, dry_run=args.dry_run)
                e = report.effects
                failures += len(e.failed)
                verb = "would create" if args.dry_run else "created"
                print(f"study {study}: {report.instances} instance(s); {verb} {len(e.created)} workitem(s)"
                      f"{' ' + ' '.join(e.created) if e.created else ''}; references appended to "
                      f"{len(set(e.appended))} workitem(s); {len(e.failed)} rule failure(s)")
            return 1 if failures else 0
        finally:
            await server.close()

    return asyncio.run(run())
