"""Rule files -> RuleSet, with every problem named by file, line and field.

Schema (version 1), all keys optional unless marked:

    version: 1
    defaults: {retrieve_ae: AET, retrieve_url: http://host:port/dicom-web}
    results: [{value: NORMAL, scheme: 99READ, meaning: Normal}, ...]   # outcomes a reader may report
    on_store:
      - id: first-read                       # required, unique
        when: [<condition>, ...]             # all must hold
        workitem: <template>                 # required
    on_completed:
      - id: arbitration                      # required, unique
        when: [<condition>, ...]             # on the completed workitem (ReadGroup = its group)
        requires: {group: read, count: 2, canceled: wait|proceed|never}   # group required
        arbitrate: always | {on_disagreement: <attribute path>}
        workitem: <template>                 # input_information: copy_input|copy_output|merge_outputs|none

    <condition>: {attribute: <path or SendingApplicationEntityTitle|SendingHostname|
                  ReceivingApplicationEntityTitle|ReadGroup>,
                  one of equals: v|[v..], matches: regex, absent: true, present: true,
                  code: {value, scheme[, meaning]};  not: true to negate}
    <template>: uid ("1-{StudyInstanceUID}"), label (required), group, worklist_label, priority,
                input_readiness, performers [{code, name, organisation}], performer_only,
                workitem_code, station_names/classes/locations [code], start_delay,
                completion_delay (ISO 8601 durations), include_patient, include_study_uid,
                include_referenced_request, input_information, comments,
                distinct_readers (default true: one reader holds at most one workitem of the group
                per study), claim_role (reader | arbitrator | admin, default reader: the role
                needed to claim under --auth oidc); both the same for every template of a group
"""

from __future__ import annotations

import re
import string
from datetime import timedelta
from pathlib import Path as FsPath
from typing import Any

import yaml

from . import yamlfile
from .errors import RuleFileError, RuleProblem
from .model import (
    SPECIAL_SUBJECTS,
    Code,
    Condition,
    Defaults,
    Disagreement,
    OnCompletedRule,
    OnStoreRule,
    Performer,
    RuleSet,
    WorkitemTemplate,
)
from .paths import parse_path

PRIORITIES = ("HIGH", "MEDIUM", "LOW")
READINESS = ("READY", "INCOMPLETE", "UNAVAILABLE")
STORE_INPUT = ("append", "single", "none")
COMPLETED_INPUT = ("copy_input", "copy_output", "merge_outputs", "none")
CANCELED_POLICIES = ("wait", "proceed", "never")
PREDICATES = ("equals", "matches", "absent", "present", "code")
_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")
_TEMPLATE_KEYS = {
    "uid", "label", "group", "worklist_label", "priority", "input_readiness", "performers", "performer_only",
    "workitem_code", "station_names", "station_classes", "station_locations", "start_delay",
    "completion_delay", "include_patient", "include_study_uid", "include_referenced_request",
    "input_information", "comments", "distinct_readers", "claim_role",
}
CLAIM_ROLES = ("reader", "arbitrator", "admin")


class _Invalid(Exception):
    """Raised to abandon one field after its problem was recorded."""


class _Checker:
    def __init__(self, file: str):
        self.file = file
        self.problems: list[RuleProblem] = []

    def fail(self, node: Any, key: str | int | None, field: str, message: str) -> _Invalid:
        line = 0
        if isinstance(node, yamlfile.Node):
            line = node.line_of(str(key)) if key is not None else node.line
        elif isinstance(node, yamlfile.LineList):
            line = node.line_of(key) if isinstance(key, int) else node.line
        self.problems.append(RuleProblem(self.file, line, field, message))
        return _Invalid()

    def mapping(self, parent: Any, key: Any, value: Any, field: str) -> yamlfile.Node:
        if not isinstance(value, yamlfile.Node):
            raise self.fail(parent, key, field, f"expected a mapping, got {_kind(value)}")
        return value

    def unknown_keys(self, node: yamlfile.Node, allowed: set[str], field: str) -> None:
        for key in node:
            if key not in allowed:
                self.fail(node, key, f"{field}.{key}", f"unknown key (allowed: {', '.join(sorted(allowed))})")

    def text(self, node: yamlfile.Node, key: str, field: str, required: bool = False) -> str | None:
        if key not in node or node[key] is None:
            if required:
                raise self.fail(node, None, f"{field}.{key}", "is required")
            return None
        value = node[key]
        if isinstance(value, (dict, list, bool)):
            raise self.fail(node, key, f"{field}.{key}", f"expected text, got {_kind(value)}")
        return str(value)

    def boolean(self, node: yamlfile.Node, key: str, field: str, default: bool) -> bool:
        if key not in node:
            return default
        if not isinstance(node[key], bool):
            raise self.fail(node, key, f"{field}.{key}", f"expected true or false, got {node[key]!r}")
        return node[key]

    def choice(self, node: yamlfile.Node, key: str, field: str, choices: tuple[str, ...], default: str) -> str:
        value = self.text(node, key, field)
        if value is None:
            return default
        if value.lower() not in [c.lower() for c in choices]:
            raise self.fail(node, key, f"{field}.{key}", f"{value!r} is not one of {', '.join(choices)}")
        return next(c for c in choices if c.lower() == value.lower())

    def template_text(self, node: yamlfile.Node, key: str, field: str, required: bool = False) -> str | None:
        value = self.text(node, key, field, required)
        if value is None:
            return None
        try:
            for _, name, spec, conv in string.Formatter().parse(value):
                if name is not None:
                    if not name or spec or conv:
                        raise ValueError(f"placeholder {{{name}}} must be an attribute path only")
                    if name not in SPECIAL_SUBJECTS:
                        parse_path(name)
        except ValueError as exc:
            raise self.fail(node, key, f"{field}.{key}", f"bad template {value!r}: {exc}") from None
        return value

    def duration(self, node: yamlfile.Node, key: str, field: str) -> timedelta | None:
        value = self.text(node, key, field)
        if value is None:
            return None
        m = _DURATION.match(value.strip().upper())
        if not m or value.strip().upper() in ("P", "PT"):
            raise self.fail(node, key, f"{field}.{key}", f"{value!r} is not an ISO 8601 duration like PT10M or P1D")
        d, h, mi, s = (int(g or 0) for g in m.groups())
        return timedelta(days=d, hours=h, minutes=mi, seconds=s)

    def code(self, parent: Any, key: Any, value: Any, field: str) -> Code:
        node = self.mapping(parent, key, value, field)
        self.unknown_keys(node, {"value", "scheme", "meaning"}, field)
        return Code(str(self.text(node, "value", field, True)), str(self.text(node, "scheme", field, True)),
                    self.text(node, "meaning", field))

    def codes(self, node: yamlfile.Node, key: str, field: str) -> list[Code]:
        if key not in node:
            return []
        value = node[key]
        if not isinstance(value, list):
            raise self.fail(node, key, f"{field}.{key}", f"expected a list of codes, got {_kind(value)}")
        return [self.code(value, i, item, f"{field}.{key}[{i}]") for i, item in enumerate(value)]

    def conditions(self, node: yamlfile.Node, field: str) -> list[Condition]:
        if "when" not in node or node["when"] is None:
            return []
        value = node["when"]
        if not isinstance(value, list):
            raise self.fail(node, "when", f"{field}.when", f"expected a list of conditions, got {_kind(value)}")
        out = []
        for i, item in enumerate(value):
            try:
                out.append(self.condition(value, i, item, f"{field}.when[{i}]"))
            except _Invalid:
                pass
        return out

    def condition(self, parent: Any, index: int, value: Any, field: str) -> Condition:
        node = self.mapping(parent, index, value, field)
        self.unknown_keys(node, {"attribute", "not", *PREDICATES}, field)
        subject = str(self.text(node, "attribute", field, True))
        path = None
        if subject not in SPECIAL_SUBJECTS:
            try:
                path = parse_path(subject)
            except ValueError as exc:
                raise self.fail(node, "attribute", f"{field}.attribute", str(exc)) from None
        ops = [op for op in PREDICATES if op in node]
        if len(ops) != 1:
            raise self.fail(node, None, field, f"needs exactly one of {', '.join(PREDICATES)} (got {len(ops)})")
        op = ops[0]
        negate = self.boolean(node, "not", field, False)
        raw = node[op]
        if op == "equals":
            vals = raw if isinstance(raw, list) else [raw]
            if not vals or any(isinstance(v, (dict, list)) or v is None for v in vals):
                raise self.fail(node, op, f"{field}.equals", "expected a value or a list of values")
            return Condition(subject, path, op, tuple(str(v) for v in vals), negate=negate)
        if op == "matches":
            try:
                pattern = re.compile(str(raw))
            except re.error as exc:
                raise self.fail(node, op, f"{field}.matches", f"bad regular expression: {exc}") from None
            return Condition(subject, path, op, pattern=pattern, negate=negate)
        if op in ("absent", "present"):
            if raw is not True:
                raise self.fail(node, op, f"{field}.{op}", "must be true (use not: true to negate)")
            return Condition(subject, path, op, negate=negate)
        if path is None:
            raise self.fail(node, "code", f"{field}.code", f"{subject} is not a code sequence")
        return Condition(subject, path, op, code=self.code(node, "code", raw, f"{field}.code"), negate=negate)

    def performers(self, node: yamlfile.Node, field: str) -> list[Performer]:
        value = node.get("performers")
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(node, "performers", f"{field}.performers", f"expected a list, got {_kind(value)}")
        out = []
        for i, item in enumerate(value):
            f = f"{field}.performers[{i}]"
            p = self.mapping(value, i, item, f)
            self.unknown_keys(p, {"code", "name", "organisation", "organization"}, f)
            if "code" not in p:
                raise self.fail(p, None, f"{f}.code", "is required")
            org = self.template_text(p, "organisation", f) or self.template_text(p, "organization", f)
            out.append(Performer(self.code(p, "code", p["code"], f"{f}.code"), self.template_text(p, "name", f), org))
        return out

    def workitem(self, rule: yamlfile.Node, field: str, on_store: bool) -> WorkitemTemplate:
        if "workitem" not in rule:
            raise self.fail(rule, None, f"{field}.workitem", "is required")
        f = f"{field}.workitem"
        node = self.mapping(rule, "workitem", rule["workitem"], f)
        self.unknown_keys(node, _TEMPLATE_KEYS, f)
        fields: dict[str, Any] = {}
        steps = [
            ("uid", lambda: self.template_text(node, "uid", f)),
            ("label", lambda: self.template_text(node, "label", f, True)),
            ("group", lambda: self.text(node, "group", f)),
            ("worklist_label", lambda: self.template_text(node, "worklist_label", f)),
            ("priority", lambda: self.choice(node, "priority", f, PRIORITIES, "MEDIUM")),
            ("input_readiness", lambda: self.choice(node, "input_readiness", f, READINESS, "READY")),
            ("performers", lambda: self.performers(node, f)),
            ("performer_only", lambda: self.boolean(node, "performer_only", f, False)),
            ("workitem_code", lambda: self.code(node, "workitem_code", node["workitem_code"], f"{f}.workitem_code")
             if "workitem_code" in node else None),
            ("station_names", lambda: self.codes(node, "station_names", f)),
            ("station_classes", lambda: self.codes(node, "station_classes", f)),
            ("station_locations", lambda: self.codes(node, "station_locations", f)),
            ("start_delay", lambda: self.duration(node, "start_delay", f)),
            ("completion_delay", lambda: self.duration(node, "completion_delay", f)),
            ("include_patient", lambda: self.boolean(node, "include_patient", f, True)),
            ("include_study_uid", lambda: self.boolean(node, "include_study_uid", f, True)),
            ("include_referenced_request", lambda: self.boolean(node, "include_referenced_request", f, True)),
            ("input_information", lambda: self.choice(node, "input_information", f,
                                                      STORE_INPUT if on_store else COMPLETED_INPUT,
                                                      "append" if on_store else "copy_input")),
            ("comments", lambda: self.template_text(node, "comments", f)),
            ("distinct_readers", lambda: self.boolean(node, "distinct_readers", f, True)),
            ("claim_role", lambda: self.choice(node, "claim_role", f, CLAIM_ROLES, "reader")),
        ]
        bad = False
        for name, get in steps:
            try:
                fields[name] = get()
            except _Invalid:
                bad = True
        if bad:
            raise _Invalid()
        template = WorkitemTemplate(**fields)
        if template.group and not (template.include_study_uid or template.include_referenced_request):
            raise self.fail(node, "group", f"{f}.group", "a grouped workitem needs include_study_uid or "
                            "include_referenced_request: without the study the group cannot be counted and "
                            "one reader could take two reads of a study")
        if template.performer_only and not template.performers:
            raise self.fail(node, "performer_only", f"{f}.performer_only", "needs at least one performer")
        if template.uid is None and on_store:
            raise self.fail(node, None, f"{f}.uid", "is required for on_store rules (a name template such as "
                            "'1-{StudyInstanceUID}'): without it every instance would create a new workitem")
        return template

    def on_store(self, rule: yamlfile.Node, field: str) -> OnStoreRule:
        self.unknown_keys(rule, {"id", "when", "workitem"}, field)
        rule_id = str(self.text(rule, "id", field, True))
        when = self.conditions(rule, field)
        return OnStoreRule(rule_id, when, self.workitem(rule, field, True), f"{self.file}:{rule.line}")

    def on_completed(self, rule: yamlfile.Node, field: str) -> OnCompletedRule:
        self.unknown_keys(rule, {"id", "when", "requires", "arbitrate", "workitem"}, field)
        rule_id = str(self.text(rule, "id", field, True))
        when = self.conditions(rule, field)
        if "requires" not in rule:
            raise self.fail(rule, None, f"{field}.requires", "is required ({group: read, count: 2})")
        req = self.mapping(rule, "requires", rule["requires"], f"{field}.requires")
        self.unknown_keys(req, {"group", "count", "canceled"}, f"{field}.requires")
        group = str(self.text(req, "group", f"{field}.requires", True))
        count = req.get("count")
        if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 1):
            raise self.fail(req, "count", f"{field}.requires.count", f"expected a positive number, got {count!r}")
        canceled = self.choice(req, "canceled", f"{field}.requires", CANCELED_POLICIES, "wait")
        disagreement = self.arbitrate(rule, field)
        template = self.workitem(rule, field, False)
        if template.group == group:
            raise self.fail(rule["workitem"], "group", f"{field}.workitem.group",
                            f"must differ from requires.group {group!r}: completing the new workitem would "
                            "trigger the rule again")
        return OnCompletedRule(rule_id, when, group, count, canceled, disagreement, template,
                               f"{self.file}:{rule.line}")

    def arbitrate(self, rule: yamlfile.Node, field: str) -> Disagreement | None:
        value = rule.get("arbitrate", "always")
        if value == "always":
            return None
        f = f"{field}.arbitrate"
        if not isinstance(value, yamlfile.Node) or set(value) != {"on_disagreement"}:
            raise self.fail(rule, "arbitrate", f, "expected 'always' or {on_disagreement: <attribute path>}")
        text = str(value["on_disagreement"])
        try:
            return Disagreement(parse_path(text), text)
        except ValueError as exc:
            raise self.fail(value, "on_disagreement", f"{f}.on_disagreement", str(exc)) from None


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def _rule_files(path: FsPath) -> list[FsPath]:
    if path.is_dir():
        return sorted([*path.glob("*.yaml"), *path.glob("*.yml")])
    return [path]


def load_rules(*paths: FsPath | str) -> RuleSet:
    """Load and check rule files (a directory: its *.yaml); RuleFileError lists every problem."""
    rules = RuleSet()
    problems: list[RuleProblem] = []
    files = [f for p in paths for f in _rule_files(FsPath(p))]
    for file in files:
        rules.files.append(str(file))
        checker = _Checker(str(file))
        before = len(rules.on_store), len(rules.on_completed)
        _load_file(checker, file, rules)
        problems += checker.problems
        problems += _group_settings([*rules.on_store[before[0]:], *rules.on_completed[before[1]:]])
    seen: dict[str, str] = {}
    for rule in [*rules.on_store, *rules.on_completed]:
        if rule.id in seen:
            file, _, line = rule.source.rpartition(":")
            problems.append(RuleProblem(file, int(line), "id", f"rule id {rule.id!r} is also used at {seen[rule.id]}"))
        seen[rule.id] = rule.source
    if problems:
        raise RuleFileError(problems)
    return rules


def _group_settings(rules: list[OnStoreRule | OnCompletedRule]) -> list[RuleProblem]:
    """distinct_readers and claim_role are settings of a group: every template of it in a file agrees."""
    problems = []
    first: dict[str, tuple[bool, str, str]] = {}
    for rule in rules:
        tpl = rule.workitem
        if not tpl.group:
            continue
        settings = (tpl.distinct_readers, tpl.claim_role)
        if tpl.group not in first:
            first[tpl.group] = (*settings, rule.source)
        elif first[tpl.group][:2] != settings:
            file, _, line = rule.source.rpartition(":")
            problems.append(RuleProblem(file, int(line), "workitem.distinct_readers/claim_role",
                                        f"group {tpl.group!r} has distinct_readers/claim_role "
                                        f"{first[tpl.group][0]}/{first[tpl.group][1]} at {first[tpl.group][2]}: "
                                        "every template of a group must agree"))
    return problems


def _load_file(checker: _Checker, file: FsPath, rules: RuleSet) -> None:
    try:
        doc = yamlfile.load(file.read_text(encoding="utf-8"))
    except OSError as exc:
        checker.problems.append(RuleProblem(str(file), 0, "(file)", f"cannot read: {exc.strerror or exc}"))
        return
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        checker.problems.append(RuleProblem(str(file), mark.line + 1 if mark else 0, "(yaml)", problem))
        return
    if not isinstance(doc, yamlfile.Node):
        checker.problems.append(RuleProblem(str(file), 1, "(document)", "expected a mapping with on_store / "
                                            "on_completed lists"))
        return
    checker.unknown_keys(doc, {"version", "defaults", "results", "on_store", "on_completed"}, "(document)")
    if doc.get("version", 1) != 1:
        checker.fail(doc, "version", "version", f"unsupported version {doc['version']!r} (this server reads 1)")
    if "defaults" in doc:
        try:
            d = checker.mapping(doc, "defaults", doc["defaults"], "defaults")
            checker.unknown_keys(d, {"retrieve_ae", "retrieve_url"}, "defaults")
            rules.defaults = Defaults(checker.text(d, "retrieve_ae", "defaults") or rules.defaults.retrieve_ae,
                                      checker.text(d, "retrieve_url", "defaults") or rules.defaults.retrieve_url)
        except _Invalid:
            pass
    try:
        rules.results += [c for c in checker.codes(doc, "results", "results")
                          if c.value not in {r.value for r in rules.results}]
    except _Invalid:
        pass
    for section, build, target in (("on_store", checker.on_store, rules.on_store),
                                   ("on_completed", checker.on_completed, rules.on_completed)):
        value = doc.get(section)
        if value is None:
            continue
        if not isinstance(value, list):
            checker.fail(doc, section, section, f"expected a list of rules, got {_kind(value)}")
            continue
        for i, item in enumerate(value):
            try:
                node = checker.mapping(value, i, item, f"{section}[{i}]")
                target.append(build(node, f"{section}[{i}]"))  # type: ignore[arg-type]
            except _Invalid:
                pass
