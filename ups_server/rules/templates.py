"""Build workitem datasets from a rule's template: name templates, codes, performers, inputs."""

from __future__ import annotations

import string
from datetime import datetime, timedelta
from typing import Any

from ..dicom.dataset import JsonDataset, element, first, items
from ..dicom.datetime import format_dt
from ..dicom.tags import (
    DICOM_RETRIEVAL_SEQUENCE,
    REFERENCED_SOP_CLASS_UID,
    REFERENCED_SOP_INSTANCE_UID,
    REFERENCED_SOP_SEQUENCE,
    REQUESTING_PHYSICIAN,
    REQUESTING_SERVICE,
    RETRIEVE_AE_TITLE,
    RETRIEVE_URL,
    SERIES_INSTANCE_UID,
    TYPE_OF_INSTANCES,
    WADO_RS_RETRIEVAL_SEQUENCE,
)
from ..ups import tags as t
from .model import SPECIAL_SUBJECTS, Code, WorkitemTemplate
from .paths import first_value, parse_path
from .performer import code_value

PATIENT_TAGS = (t.PATIENT_NAME, t.PATIENT_ID, t.ISSUER_OF_PATIENT_ID,
                t.ISSUER_OF_PATIENT_ID_QUALIFIERS_SEQUENCE,
                t.PATIENT_BIRTH_DATE, t.PATIENT_SEX, t.OTHER_PATIENT_IDS_SEQUENCE)
REQUEST_TAGS = (t.ACCESSION_NUMBER, t.ISSUER_OF_ACCESSION_NUMBER_SEQUENCE, t.REQUESTED_PROCEDURE_ID,
                t.REQUESTED_PROCEDURE_DESCRIPTION, t.REQUESTED_PROCEDURE_CODE_SEQUENCE, REQUESTING_PHYSICIAN,
                REQUESTING_SERVICE)


def render(template: str, ds: JsonDataset, extra: dict[str, str] | None = None) -> str:
    """``'1-{StudyInstanceUID}'`` -> ``'1-1.2.3'``; an absent attribute renders empty."""
    out = []
    for literal, name, _, _ in string.Formatter().parse(template):
        out.append(literal)
        if name is not None:
            value = (extra or {}).get(name)
            if value is None and name not in SPECIAL_SUBJECTS:
                value = first_value(ds, parse_path(name))
            out.append("" if value is None else str(value))
    return "".join(out)


def code_item(code: Code) -> JsonDataset:
    item = {**code_value(code.value), t.CODING_SCHEME_DESIGNATOR: element("SH", code.scheme)}
    item[t.CODE_MEANING] = element("LO", code.meaning or code.value)
    return item


def _seq(*item_list: JsonDataset) -> dict[str, Any]:
    return {"vr": "SQ", "Value": list(item_list)} if item_list else {"vr": "SQ"}


def _dt(now: datetime, delay: timedelta | None) -> str:
    return format_dt(now + (delay or timedelta()))


def build_workitem(tpl: WorkitemTemplate, source: JsonDataset, study_uid: str, now: datetime,
                   extra: dict[str, str] | None = None, request: list[JsonDataset] | None = None) -> JsonDataset:
    """The N-CREATE dataset of a rule workitem; ``source`` is what templates read (the stored
    instance, or the completed workitem); ``request`` overrides the Referenced Request items."""
    ds: JsonDataset = {
        t.PROCEDURE_STEP_STATE: element("CS", "SCHEDULED"),
        t.SCHEDULED_PROCEDURE_STEP_PRIORITY: element("CS", tpl.priority),
        t.PROCEDURE_STEP_LABEL: element("LO", render(tpl.label, source, extra)),
        t.INPUT_READINESS_STATE: element("CS", tpl.input_readiness),
        t.SCHEDULED_PROCEDURE_STEP_START_DATETIME: element("DT", _dt(now, tpl.start_delay)),
    }
    if tpl.worklist_label:
        ds[t.WORKLIST_LABEL] = element("LO", render(tpl.worklist_label, source, extra))
    if tpl.completion_delay is not None:
        ds[t.EXPECTED_COMPLETION_DATETIME] = element("DT", _dt(now, tpl.completion_delay))
    if tpl.comments:
        ds[t.COMMENTS_ON_SCHEDULED_PROCEDURE_STEP] = element("LT", render(tpl.comments, source, extra))
    if tpl.performers:
        performers = []
        for p in tpl.performers:
            item: JsonDataset = {t.HUMAN_PERFORMER_CODE_SEQUENCE: _seq(code_item(p.code))}
            if p.name:
                item[t.HUMAN_PERFORMER_NAME] = element("PN", render(p.name, source, extra))
            if p.organisation:
                item[t.HUMAN_PERFORMER_ORGANIZATION] = element("LO", render(p.organisation, source, extra))
            performers.append(item)
        ds[t.SCHEDULED_HUMAN_PERFORMERS_SEQUENCE] = _seq(*performers)
    if tpl.workitem_code:
        ds[t.SCHEDULED_WORKITEM_CODE_SEQUENCE] = _seq(code_item(tpl.workitem_code))
    for tag, codes in ((t.SCHEDULED_STATION_NAME_CODE_SEQUENCE, tpl.station_names),
                       (t.SCHEDULED_STATION_CLASS_CODE_SEQUENCE, tpl.station_classes),
                       (t.SCHEDULED_STATION_GEOGRAPHIC_LOCATION_CODE_SEQUENCE, tpl.station_locations)):
        if codes:
            ds[tag] = _seq(*(code_item(c) for c in codes))
    if tpl.include_patient:
        ds.update({tag: source[tag] for tag in PATIENT_TAGS if tag in source})
    if tpl.include_study_uid:
        ds[t.STUDY_INSTANCE_UID] = element("UI", study_uid)
    if tpl.include_referenced_request:
        if request is None:
            item = {tag: source[tag] for tag in REQUEST_TAGS if tag in source}
            item[t.STUDY_INSTANCE_UID] = element("UI", study_uid)
            request = [item]
        ds[t.REFERENCED_REQUEST_SEQUENCE] = _seq(*request)
    else:
        ds[t.REFERENCED_REQUEST_SEQUENCE] = _seq()
    return ds


def input_item(study_uid: str, series_uid: str, refs: list[tuple[str, str]], retrieve_ae: str,
               retrieve_url: str | None) -> JsonDataset:
    """One Input Information Sequence item: a series of a study, its SOP references, and where
    to retrieve them (DICOM AE and WADO-RS URL)."""
    item: JsonDataset = {
        t.STUDY_INSTANCE_UID: element("UI", study_uid),
        SERIES_INSTANCE_UID: element("UI", series_uid),
        TYPE_OF_INSTANCES: element("CS", "DICOM"),
        DICOM_RETRIEVAL_SEQUENCE: _seq({RETRIEVE_AE_TITLE: element("AE", retrieve_ae)}),
        REFERENCED_SOP_SEQUENCE: _seq(*({REFERENCED_SOP_CLASS_UID: element("UI", cls),
                                         REFERENCED_SOP_INSTANCE_UID: element("UI", sop)} for cls, sop in refs)),
    }
    if retrieve_url:
        url = f"{retrieve_url.rstrip('/')}/studies/{study_uid}/series/{series_uid}"
        item[WADO_RS_RETRIEVAL_SEQUENCE] = _seq({RETRIEVE_URL: element("UR", url)})
    return item


def add_reference(ds: JsonDataset, study_uid: str, series_uid: str, sop_class: str, sop_uid: str,
                  retrieve_ae: str, retrieve_url: str | None) -> bool:
    """Append one SOP reference to the Input Information Sequence; False if already there."""
    inputs = items(ds, t.INPUT_INFORMATION_SEQUENCE)
    for item in inputs:
        if first(item, SERIES_INSTANCE_UID) == series_uid and first(item, t.STUDY_INSTANCE_UID) == study_uid:
            refs = items(item, REFERENCED_SOP_SEQUENCE)
            if any(first(r, REFERENCED_SOP_INSTANCE_UID) == sop_uid for r in refs):
                return False
            refs.append({REFERENCED_SOP_CLASS_UID: element("UI", sop_class),
                         REFERENCED_SOP_INSTANCE_UID: element("UI", sop_uid)})
            item[REFERENCED_SOP_SEQUENCE] = _seq(*refs)
            ds[t.INPUT_INFORMATION_SEQUENCE] = _seq(*inputs)
            return True
    inputs.append(input_item(study_uid, series_uid, [(sop_class, sop_uid)], retrieve_ae, retrieve_url))
    ds[t.INPUT_INFORMATION_SEQUENCE] = _seq(*inputs)
    return True


def outputs_of(ds: JsonDataset) -> list[JsonDataset]:
    """Output Information items of a completed workitem (in its performed procedure item)."""
    out: list[JsonDataset] = []
    for performed in items(ds, t.UPS_PERFORMED_PROCEDURE_SEQUENCE):
        out += items(performed, t.OUTPUT_INFORMATION_SEQUENCE)
    return out


def study_inputs(study_uid: str, refs: list[tuple[str, str, str]], retrieve_ae: str,
                 retrieve_url: str | None) -> list[JsonDataset]:
    """Input Information items for (series, SOP class, SOP instance) references of one study:
    one item per series, in first-sight order."""
    by_series: dict[str, list[tuple[str, str]]] = {}
    for series_uid, sop_class, sop_uid in refs:
        by_series.setdefault(series_uid, []).append((sop_class, sop_uid))
    return [input_item(study_uid, series_uid, sops, retrieve_ae, retrieve_url) for series_uid, sops in by_series.items()]


def referenced_sops(ds: JsonDataset, study_uid: str) -> set[str]:
    """The SOP Instance UIDs of ``study_uid`` the Input Information Sequence references."""
    return {first(ref, REFERENCED_SOP_INSTANCE_UID) for item in items(ds, t.INPUT_INFORMATION_SEQUENCE)
            if first(item, t.STUDY_INSTANCE_UID) == study_uid for ref in items(item, REFERENCED_SOP_SEQUENCE)}


def set_references(ds: JsonDataset, study_uid: str, refs: list[tuple[str, str, str]], retrieve_ae: str,
                   retrieve_url: str | None) -> None:
    """Make the references of ``study_uid`` exactly ``refs``: others dropped (a series item left
    empty with them), missing ones appended; items of other studies kept."""
    wanted = {sop for _, _, sop in refs}
    inputs = []
    for item in items(ds, t.INPUT_INFORMATION_SEQUENCE):
        if first(item, t.STUDY_INSTANCE_UID) == study_uid:
            kept = [ref for ref in items(item, REFERENCED_SOP_SEQUENCE)
                    if first(ref, REFERENCED_SOP_INSTANCE_UID) in wanted]
            if not kept:
                continue
            item = {**item, REFERENCED_SOP_SEQUENCE: _seq(*kept)}
        inputs.append(item)
    ds[t.INPUT_INFORMATION_SEQUENCE] = _seq(*inputs)
    for series_uid, sop_class, sop_uid in refs:
        add_reference(ds, study_uid, series_uid, sop_class, sop_uid, retrieve_ae, retrieve_url)
