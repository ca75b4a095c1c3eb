"""Every rule-file error names the file, the line and the field; ``rules check`` exits 1."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from ups_server.paths import rules_dir
from ups_server.rules.conditions import holds
from ups_server.rules.errors import RuleFileError
from ups_server.rules.loader import load_rules

STORE = """\
version: 1
on_store:
  - id: r
    workitem:
      uid: "1-{StudyInstanceUID}"
      group: read
      label: Read
"""
COMPLETED = """\
version: 1
on_completed:
  - id: c
    requires: {group: read, count: 2}
    workitem:
      uid: "3-{StudyInstanceUID}"
      group: arbitration
      label: Arbitration
"""

# (rule file text, expected line, expected field, a word of the message)
CASES = [
    ("on_store: [\n  - id: x\n", 2, "(yaml)", ""),
    ("- just a list\n", 1, "(document)", "mapping"),
    ("version: 2\n", 1, "version", "unsupported"),
    ("rules: []\n", 1, "(document).rules", "unknown key"),
    ("on_store: 3\n", 1, "on_store", "list"),
    ("on_store:\n  - 3\n", 2, "on_store[0]", "mapping"),
    (STORE.replace("  - id: r\n", "  - name: r\n"), 3, "on_store[0].name", "unknown key"),
    (STORE.replace("  - id: r\n", "  - when: []\n"), 3, "on_store[0].id", "required"),
    (STORE.replace("    workitem:\n", "    when: 4\n    workitem:\n"), 4, "on_store[0].when", "list"),
    (STORE.replace("    workitem:\n", "    when:\n      - attribute: Modality\n    workitem:\n"), 5,
     "on_store[0].when[0]", "exactly one"),
    (STORE.replace("    workitem:\n", "    when:\n      - {attribute: Modality, equals: MG, absent: true}\n"
                   "    workitem:\n"), 5, "on_store[0].when[0]", "exactly one"),
    (STORE.replace("    workitem:\n", "    when:\n      - equals: MG\n    workitem:\n"), 5,
     "on_store[0].when[0].attribute", "required"),
    (STORE.replace("    workitem:\n", "    when:\n      - {attribute: Modalty, equals: MG}\n    workitem:\n"), 5,
     "on_store[0].when[0].attribute", "unknown attribute"),
    (STORE.replace("    workitem:\n", "    when:\n      - {attribute: Modality.CodeValue, equals: MG}\n"
                   "    workitem:\n"), 5, "on_store[0].when[0].attribute", "not a sequence"),
    (STORE.replace("    workitem:\n", "    when:\n      - {attribute: Modality, matches: '(MG'}\n"
                   "    workitem:\n"), 5, "on_store[0].when[0].matches", "regular expression"),
    (STORE.replace("    workitem:\n", "    when:\n      - {attribute: Modality, absent: false}\n"
                   "    workitem:\n"), 5, "on_store[0].when[0].absent", "must be true"),
    (STORE.replace("    workitem:\n", "    when:\n      - {attribute: Modality, equals: {a: 1}}\n"
                   "    workitem:\n"), 5, "on_store[0].when[0].equals", "value"),
    (STORE.replace("    workitem:\n", "    when:\n      - {attribute: SendingHostname, code: {value: A, scheme: B}}"
                   "\n    workitem:\n"), 5, "on_store[0].when[0].code", "code sequence"),
    (STORE.replace("    workitem:\n", "    when:\n      - {attribute: ScheduledWorkitemCodeSequence, code: {value: A}}"
                   "\n    workitem:\n"), 5, "on_store[0].when[0].code.scheme", "required"),
    (STORE.replace("    workitem:\n", "    when:\n      - {attribute: Modality, equals: MG, not: maybe}"
                   "\n    workitem:\n"), 5, "on_store[0].when[0].not", "true or false"),
    ("on_store:\n  - id: r\n", 2, "on_store[0].workitem", "required"),
    (STORE.replace("      label: Read\n", ""), 5, "on_store[0].workitem.label", "required"),
    (STORE.replace("      label: Read\n", "      label: Read\n      colour: red\n"), 8,
     "on_store[0].workitem.colour", "unknown key"),
    (STORE.replace("      label: Read\n", "      label: 'Read {NoSuchThing}'\n"), 7, "on_store[0].workitem.label",
     "bad template"),
    (STORE.replace("      label: Read\n", "      label: 'Read {}'\n"), 7, "on_store[0].workitem.label", "template"),
    (STORE.replace("      label: Read\n", "      label: Read\n      priority: URGENT\n"), 8,
     "on_store[0].workitem.priority", "HIGH, MEDIUM, LOW"),
    (STORE.replace("      label: Read\n", "      label: Read\n      input_readiness: SOON\n"), 8,
     "on_store[0].workitem.input_readiness", "READY"),
    (STORE.replace("      label: Read\n", "      label: Read\n      start_delay: tomorrow\n"), 8,
     "on_store[0].workitem.start_delay", "ISO 8601"),
    (STORE.replace("      label: Read\n", "      label: Read\n      completion_delay: P\n"), 8,
     "on_store[0].workitem.completion_delay", "ISO 8601"),
    (STORE.replace("      label: Read\n", "      label: Read\n      include_patient: yes please\n"), 8,
     "on_store[0].workitem.include_patient", "true or false"),
    (STORE.replace("      label: Read\n", "      label: Read\n      input_information: copy_input\n"), 8,
     "on_store[0].workitem.input_information", "append"),
    (STORE.replace("      label: Read\n", "      label: Read\n      performers: R1\n"), 8,
     "on_store[0].workitem.performers", "list"),
    (STORE.replace("      label: Read\n", "      label: Read\n      performers:\n        - name: Smith\n"), 9,
     "on_store[0].workitem.performers[0].code", "required"),
    (STORE.replace("      label: Read\n", "      label: Read\n      performer_only: true\n"), 8,
     "on_store[0].workitem.performer_only", "performer"),
    (STORE.replace("      label: Read\n", "      label: Read\n      workitem_code: READ\n"), 8,
     "on_store[0].workitem.workitem_code", "mapping"),
    (STORE.replace("      label: Read\n", "      label: Read\n      station_names: [{value: A}]\n"), 8,
     "on_store[0].workitem.station_names[0].scheme", "required"),
    (STORE.replace("      label: Read\n", "      label: Read\n      include_study_uid: false\n"
                   "      include_referenced_request: false\n"), 6, "on_store[0].workitem.group", "study"),
    (STORE.replace('      uid: "1-{StudyInstanceUID}"\n', ""), 5, "on_store[0].workitem.uid", "required"),
    (COMPLETED.replace("    requires: {group: read, count: 2}\n", ""), 3, "on_completed[0].requires", "required"),
    (COMPLETED.replace("{group: read, count: 2}", "{count: 2}"), 4, "on_completed[0].requires.group", "required"),
    (COMPLETED.replace("count: 2", "count: two"), 4, "on_completed[0].requires.count", "positive"),
    (COMPLETED.replace("count: 2", "count: 0"), 4, "on_completed[0].requires.count", "positive"),
    (COMPLETED.replace("count: 2", "count: 2, canceled: ignore"), 4, "on_completed[0].requires.canceled",
     "wait, proceed, never"),
    (COMPLETED.replace("count: 2", "count: 2, quorum: 1"), 4, "on_completed[0].requires.quorum", "unknown key"),
    (COMPLETED.replace("    workitem:\n", "    arbitrate: sometimes\n    workitem:\n"), 5,
     "on_completed[0].arbitrate", "always"),
    (COMPLETED.replace("    workitem:\n", "    arbitrate: {on_disagreement: NoSuch.Path}\n    workitem:\n"), 5,
     "on_completed[0].arbitrate.on_disagreement", "unknown attribute"),
    (COMPLETED.replace("group: arbitration", "group: read"), 7, "on_completed[0].workitem.group", "trigger"),
    (COMPLETED.replace("      label: Arbitration\n", "      label: Arbitration\n      input_information: append\n"),
     9, "on_completed[0].workitem.input_information", "copy_input"),
]


@pytest.mark.parametrize(("text", "line", "field", "word"), CASES)
def test_each_error_names_file_line_field(tmp_path, text, line, field, word):
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    with pytest.raises(RuleFileError) as info:
        load_rules(path)
    problems = info.value.problems
    assert any(p.file == str(path) and p.line == line and p.field == field and word in p.message
               for p in problems), [str(p) for p in problems]


def test_all_problems_are_reported_and_duplicate_ids_across_files(tmp_path):
    (tmp_path / "a.yaml").write_text(STORE)
    (tmp_path / "b.yaml").write_text(STORE.replace("label: Read", "label: Read\n      priority: NOW"))
    with pytest.raises(RuleFileError) as info:
        load_rules(tmp_path)
    text = str(info.value)
    assert f"{tmp_path / 'b.yaml'}:8: on_store[0].workitem.priority" in text
    (tmp_path / "b.yaml").write_text(STORE)
    with pytest.raises(RuleFileError) as info:
        load_rules(tmp_path)
    [problem] = info.value.problems
    assert problem.field == "id" and problem.line == 3 and "also used" in problem.message


def test_group_settings_must_agree(tmp_path):
    """distinct_readers and claim_role belong to a group: two templates of one group disagreeing
    is an error naming both places."""
    path = tmp_path / "groups.yaml"
    path.write_text(STORE + "      distinct_readers: false\n" + STORE.split("on_store:\n", 1)[1].replace(
        "id: r", "id: r2").replace("1-{", "2-{"))
    with pytest.raises(RuleFileError) as err:
        load_rules(path)
    [problem] = err.value.problems
    assert problem.line == 9 and "group 'read'" in problem.message and "must agree" in problem.message
    rules = load_rules(rules_dir() / "double-reading.yaml")
    assert [(r.workitem.distinct_readers, r.workitem.claim_role) for r in [*rules.on_store, *rules.on_completed]] \
        == [(True, "reader"), (True, "reader"), (True, "arbitrator")]
    rules = load_rules(rules_dir() / "dcm4chee-double-reading.yaml")
    assert [r.workitem.distinct_readers for r in rules.on_store] == [False, False]


def test_missing_file(tmp_path):
    with pytest.raises(RuleFileError) as info:
        load_rules(tmp_path / "nope.yaml")
    assert info.value.problems[0].field == "(file)"


def test_shipped_rule_files_are_valid():
    for name in ("double-reading.yaml", "dcm4chee-double-reading.yaml"):
        rules = load_rules(rules_dir() / name)
        assert len(rules.on_store) == 2 and len(rules.on_completed) == 1


def test_conditions_semantics(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(textwrap.dedent("""\
        on_store:
          - id: r
            when:
              - {attribute: Modality, equals: [MG, CR]}
              - {attribute: SendingApplicationEntityTitle, matches: "MAMMO_.*"}
              - {attribute: SendingHostname, absent: true}
              - {attribute: BodyPartExamined, equals: SKULL, not: true}
              - {attribute: RequestAttributesSequence.ScheduledProtocolCodeSequence,
                 code: {value: SCREEN, scheme: 99LOCAL}}
            workitem: {uid: "1-{StudyInstanceUID}", label: x}
        """))
    conds = load_rules(path).on_store[0].when
    code = {"00080100": {"vr": "SH", "Value": ["SCREEN"]}, "00080102": {"vr": "SH", "Value": ["99LOCAL"]}}
    ds = {"00080060": {"vr": "CS", "Value": ["MG"]},
          "00400275": {"vr": "SQ", "Value": [{"00400008": {"vr": "SQ", "Value": [code]}}]}}
    special = {"SendingApplicationEntityTitle": "MAMMO_1", "SendingHostname": None}
    assert [holds(c, ds, special) for c in conds] == [True, True, True, True, True]
    other = {**special, "SendingApplicationEntityTitle": "CT_1", "SendingHostname": "ct.example"}
    ds2 = {"00080060": {"vr": "CS", "Value": ["CT"]}, "00180015": {"vr": "CS", "Value": ["SKULL"]}}
    assert [holds(c, ds2, other) for c in conds] == [False, False, False, False, False]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ups_server", "rules", "check", *args], capture_output=True,
                          text=True, timeout=60, check=False)


def test_cli_exit_codes(tmp_path):
    ok = _cli(str(rules_dir() / "double-reading.yaml"), str(rules_dir() / "dcm4chee-double-reading.yaml"))
    assert ok.returncode == 0 and ok.stdout.startswith("ok:")
    bad = tmp_path / "bad.yaml"
    bad.write_text(STORE.replace("label: Read", "label: Read\n      priority: NOW"))
    failed = _cli(str(bad))
    assert failed.returncode == 1
    assert f"{bad}:8: on_store[0].workitem.priority: 'NOW' is not one of" in failed.stderr
