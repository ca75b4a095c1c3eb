"""``ups-server rules check|apply``. PLACEHOLDER until the rules engine lands."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def add_rules_parser(sub, add_settings: Callable[[argparse.ArgumentParser], None]) -> None:
    rules = sub.add_parser("rules", help="check rule files, re-apply rules to stored studies")
    rules_sub = rules.add_subparsers(dest="rules_command", required=True, metavar="SUBCOMMAND")
    check = rules_sub.add_parser("check", help="validate rule files")
    check.add_argument("files", nargs="+")
    check.set_defaults(handler=lambda args, settings: 0)
