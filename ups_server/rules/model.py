"""The rule objects a rule file becomes (see rules/README.md in the repository for the YAML)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta

# A path into a DICOM JSON dataset: [(tag, item index or None for "any item"), ...]
Path = tuple[tuple[str, int | None], ...]

# Condition subjects that are not dataset attributes (dcm4chee's names).
SENDING_AE = "SendingApplicationEntityTitle"
SENDING_HOST = "SendingHostname"
RECEIVING_AE = "ReceivingApplicationEntityTitle"
READ_GROUP = "ReadGroup"  # the group of a workitem (on_completed)
SPECIAL_SUBJECTS = (SENDING_AE, SENDING_HOST, RECEIVING_AE, READ_GROUP)


@dataclass(frozen=True)
class Code:
    value: str
    scheme: str
    meaning: str | None = None


@dataclass(frozen=True)
class Condition:
    """``subject`` (an attribute path or a special name) tested with one predicate."""

    subject: str
    path: Path | None  # None for the special subjects
    op: str  # equals | matches | absent | present | code
    values: tuple[str, ...] = ()
    pattern: re.Pattern[str] | None = None
    code: Code | None = None
    negate: bool = False


@dataclass(frozen=True)
class Performer:
    code: Code
    name: str | None = None  # a template
    organisation: str | None = None  # a template


@dataclass
class WorkitemTemplate:
    uid: str | None  # name template -> name_based_uid; None: a random UID (no dedup!)
    label: str
    group: str | None = None
    worklist_label: str | None = None
    priority: str = "MEDIUM"
    input_readiness: str = "READY"
    performers: list[Performer] = field(default_factory=list)
    performer_only: bool = False
    workitem_code: Code | None = None
    station_names: list[Code] = field(default_factory=list)
    station_classes: list[Code] = field(default_factory=list)
    station_locations: list[Code] = field(default_factory=list)
    start_delay: timedelta | None = None
    completion_delay: timedelta | None = None
    include_patient: bool = True
    include_study_uid: bool = True
    include_referenced_request: bool = True
    input_information: str = "append"  # on_store: append | single | none;
    # on_completed: copy_input | copy_output | merge_outputs | none
    comments: str | None = None
    distinct_readers: bool = True  # of the group: one reader holds at most one of its workitems per study
    claim_role: str = "reader"  # of the group: the role a principal needs to claim (--auth oidc)


@dataclass
class OnStoreRule:
    id: str
    when: list[Condition]
    workitem: WorkitemTemplate
    source: str = ""  # file:line, for logs


@dataclass
class Disagreement:
    path: Path
    text: str


@dataclass
class OnCompletedRule:
    id: str
    when: list[Condition]
    group: str  # the group whose members must all be COMPLETED
    count: int | None  # and how many there must be (None: any number)
    canceled: str  # wait | proceed | never
    disagreement: Disagreement | None  # None: always
    workitem: WorkitemTemplate
    source: str = ""


@dataclass
class Defaults:
    retrieve_ae: str | None = None
    retrieve_url: str | None = None


@dataclass
class RuleSet:
    on_store: list[OnStoreRule] = field(default_factory=list)
    on_completed: list[OnCompletedRule] = field(default_factory=list)
    defaults: Defaults = field(default_factory=Defaults)
    # the outcomes a read may report (Performed Workitem Code Sequence), offered by the reading page
    results: list[Code] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
