"""The documentation keeps up with the code: every rule id the code and tests cite is defined in
docs/rule-ids.md (a row whose first cell is the id)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RULE_ID = re.compile(r"\b(?:UPS-[A-Z]+|AMB)-\d\d\b")


def test_every_cited_rule_id_is_defined_in_docs():
    cited: dict[str, str] = {}
    for folder in ("ups_server", "tests", "conformance"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for rule in RULE_ID.findall(path.read_text(encoding="utf-8")):
                cited.setdefault(rule, str(path.relative_to(ROOT)))
    assert len(cited) > 50  # the pattern finds the ids the code cites
    table = (ROOT / "docs" / "rule-ids.md").read_text(encoding="utf-8")
    defined = set(re.findall(r"^\| ((?:UPS-[A-Z]+|AMB)-\d\d) \|", table, re.MULTILINE))
    undefined = {rule: where for rule, where in cited.items() if rule not in defined}
    assert not undefined, f"cited but not defined in docs/rule-ids.md: {undefined}"


def test_conformance_statement_names_every_sop_class_the_server_accepts():
    from pynetdicom import AE, AllStoragePresentationContexts

    from ups_server.dimse.contexts import add_supported_contexts

    ae = AE()
    add_supported_contexts(ae)
    storage = {cx.abstract_syntax for cx in AllStoragePresentationContexts}
    others = {cx.abstract_syntax for cx in ae.supported_contexts} - storage
    assert len(others) >= 12  # verification, five UPS classes, six Q/R classes
    statement = (ROOT / "docs" / "conformance-statement.md").read_text(encoding="utf-8")
    assert not {uid for uid in others if uid not in statement}
    assert f"{len(storage)} classes" in statement  # the storage classes, by count
