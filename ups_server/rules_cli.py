"""``ups-server rules check FILE...``, ``ups-server rules apply SCOPE [--dry-run] [--verbose]`` and
``ups-server studies delete UID...``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

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
        "apply", help="make the rule workitems of stored studies what the on_store rules derive",
        description="Reconcile a scope of studies with the on_store rules (--rules, default the bundled rules): "
                    "create missing workitems, add missing references and drop those to instances no longer "
                    "stored, correct labels and groups, and cancel SCHEDULED workitems no rule derives any "
                    "more (reason: 'rule no longer applies'). IN PROGRESS and final workitems are never "
                    "changed: they are reported as conflicts. A second run changes nothing.")
    target = apply.add_mutually_exclusive_group(required=True)
    target.add_argument("--study", action="append", metavar="UID", help="a Study Instance UID (repeatable)")
    target.add_argument("--since", type=_datetime, metavar="DATETIME",
                        help="studies with an instance stored since then (ISO 8601; local time unless an offset "
                             "is given)")
    target.add_argument("--worklist-label", metavar="LABEL", help="studies with a rule workitem on this worklist")
    target.add_argument("--all", action="store_true", help="every stored study (and every study with rule "
                                                            "workitems whose instances are gone)")
    apply.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    apply.add_argument("--verbose", action="store_true", help="the changes and conflicts per study")
    add_settings(apply)
    apply.set_defaults(handler=run_apply)

    studies = sub.add_parser("studies", help="manage stored studies")
    studies_sub = studies.add_subparsers(dest="studies_command", required=True, metavar="SUBCOMMAND")
    delete = studies_sub.add_parser(
        "delete", help="delete stored studies and reconcile their workitems",
        description="Delete stored studies (index rows and files); the rules then reconcile their workitems: "
                    "SCHEDULED reads are canceled ('rule no longer applies'), claimed and final ones are "
                    "reported as conflicts.")
    delete.add_argument("study_uids", nargs="+", metavar="UID")
    add_settings(delete)
    delete.set_defaults(handler=run_delete)


def _datetime(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 date-time (e.g. 2026-11-30T08:00)") from None
    return value if value.tzinfo else value.astimezone()


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


def _run_headless(settings: Settings, work: Callable[[Any], Awaitable[int]]) -> int:
    """``work(server)`` on the opened root without its network parts; exit 1 on a broken rule file.
    The events service still writes the outbox rows (in the rules' transactions) that a running
    server delivers."""
    from .rules.errors import RuleFileError
    from .server import Server

    server = Server(settings, network=False)  # the database, the services and the rules; no listeners

    async def run() -> int:
        try:
            await server.open()
        except RuleFileError as exc:
            for problem in exc.problems:
                print(problem, file=sys.stderr)
            return 1
        try:
            return await work(server)
        finally:
            await server.close()

    return asyncio.run(run())


def run_apply(args: argparse.Namespace, settings: Settings) -> int:
    from .rules.reconcile import Reconciler, scope

    async def work(server) -> int:
        engine = server.database.engine
        reconciler = Reconciler(server.services.rules)
        studies = await scope(engine, study_uids=args.study, since=args.since, worklist_label=args.worklist_label)
        print(f"scope: {len(studies)} study(ies); {reconciler.derivation.describe()}")
        report = await reconciler.run(engine, studies, dry_run=args.dry_run)
        print_report(report, args.dry_run, args.verbose)
        return 1 if report.failures else 0

    return _run_headless(settings, work)


def run_delete(args: argparse.Namespace, settings: Settings) -> int:
    from .audit import Actor

    actor = Actor(display_name="ups-server studies delete")

    async def work(server) -> int:
        missing = 0
        for study in args.study_uids:
            deleted = await server.ingest.delete_study(study, actor)
            if deleted is None:
                print(f"study {study}: not stored", file=sys.stderr)
                missing += 1
                continue
            print(f"study {study}: deleted {deleted.instances} instance(s)")
            for report in deleted.effects:
                print_report(report, dry_run=False, verbose=True)
        return 1 if missing else 0

    return _run_headless(settings, work)


MAX_CONFLICTS_SHOWN = 50


def print_report(report, dry_run: bool, verbose: bool) -> None:
    """The plan (``dry_run``) or what was done: per study with ``verbose``, then the counts."""
    would = "would " if dry_run else ""
    if verbose:
        for study, c in report.per_study.items():
            parts = [f"{label} {' '.join(uids)}" for label, uids in (
                ("create", c.created), ("references", c.references), ("labels/group", c.relabelled),
                ("cancel", c.canceled)) if uids]
            print(f"study {study}: {'; '.join(parts) or 'no change'}")
            for line in c.conflicts:
                print(f"  conflict: {line}")
            for line in c.failed:
                print(f"  rule failure: {line}")
    elif report.conflicts or report.failures:
        shown = (report.conflicts + report.failures)[:MAX_CONFLICTS_SHOWN]
        for line in shown:
            print(line)
        more = len(report.conflicts) + len(report.failures) - len(shown)
        if more:
            print(f"... and {more} more (--verbose lists every study)")
    print(f"{'would create' if dry_run else 'created'} {report.created} workitem(s); "
          f"{would}change references of {report.references}, labels or group of {report.relabelled}; "
          f"{would}cancel {report.canceled} ('rule no longer applies'); {would}update {report.rule_rows} rule "
          f"record(s); {len(report.conflicts)} conflict(s) (claimed or final, not changed); "
          f"{len(report.failures)} rule failure(s); "
          f"{f'would change {report.changed_rows} row(s)' if dry_run else f'{report.changed_rows} row(s) changed'}")
    if report.changed_rows == 0 and not report.failures:
        print("no change: the workitems already are what the rules derive")
