"""Event Report content (PS3.4 Table CC.2.4-1) and its two wire forms.

An event is (event type, workitem UID, Event Information dataset). Over the WebSocket it is
one DICOM JSON object with the N-EVENT-REPORT message fields added (PS3.18 11.13, UPS-WS-03);
over DIMSE the Event Information is the N-EVENT-REPORT dataset (UPS-EVT-01).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from sqlalchemy import ARRAY, Text, func, literal
from sqlalchemy.dialects.postgresql import JSONB

from ..dicom import jsontext
from ..dicom.dataset import JsonDataset, element, first, items
from ..dicom.tags import AFFECTED_SOP_CLASS_UID, AFFECTED_SOP_INSTANCE_UID, EVENT_TYPE_ID, MESSAGE_ID
from ..dicom.uids import GLOBAL_SUBSCRIPTION, UPS_PUSH
from ..ups import tags as t


class EventType(IntEnum):
    STATE_REPORT = 1
    CANCEL_REQUESTED = 2
    PROGRESS_REPORT = 3
    SCP_STATUS_CHANGE = 4
    ASSIGNED = 5


@dataclass
class Event:
    type: EventType
    workitem_uid: str | None  # None: SCP Status Change (no workitem)
    info: JsonDataset


def _copy(src: JsonDataset, dst: JsonDataset, *tags: str) -> None:
    for tag in tags:
        if tag in src and src[tag].get("Value"):
            dst[tag] = copy.deepcopy(src[tag])


def state_report(uid: str, ds: JsonDataset, state: str | None = None) -> Event:
    """UPS State Report: state and input readiness; for CANCELED the reason (UPS-EVT-07)."""
    state = state or first(ds, t.PROCEDURE_STEP_STATE)
    info: JsonDataset = {
        t.PROCEDURE_STEP_STATE: element("CS", state),
        t.INPUT_READINESS_STATE: element("CS", first(ds, t.INPUT_READINESS_STATE) or "READY"),
    }
    if state == "CANCELED":
        progress = items(ds, t.PROCEDURE_STEP_PROGRESS_INFORMATION_SEQUENCE)
        if progress:
            _copy(progress[0], info, t.REASON_FOR_CANCELLATION,
                  t.PROCEDURE_STEP_DISCONTINUATION_REASON_CODE_SEQUENCE)
    return Event(EventType.STATE_REPORT, uid, info)


def state_report_sql(state: str, dataset: Any) -> Any:
    """``state_report(uid, ds, state)``'s Event Information as SQL over a row's ``dataset`` (JSONB),
    for a state other than CANCELED (claim-next's statement: events.component ``claim_sql``)."""
    assert state != "CANCELED"
    readiness = func.coalesce(func.nullif(dataset.op("#>>")(
        literal([t.INPUT_READINESS_STATE, "Value", "0"], ARRAY(Text))), ""), "READY")
    return func.jsonb_build_object(
        t.PROCEDURE_STEP_STATE, literal(element("CS", state), JSONB),
        t.INPUT_READINESS_STATE, func.jsonb_build_object("vr", "CS", "Value", func.jsonb_build_array(readiness)))


def cancel_requested(uid: str, requester: str | None, request: JsonDataset | None) -> Event:
    """UPS Cancel Requested: the Requesting AE and what the request carried (UPS-CANCEL-03)."""
    info: JsonDataset = {t.REQUESTING_AE: element("AE", requester) if requester else element("AE")}
    _copy(request or {}, info, t.REASON_FOR_CANCELLATION, t.PROCEDURE_STEP_DISCONTINUATION_REASON_CODE_SEQUENCE,
          t.CONTACT_URI, t.CONTACT_DISPLAY_NAME)
    return Event(EventType.CANCEL_REQUESTED, uid, info)


def progress_report(uid: str, ds: JsonDataset) -> Event:
    """UPS Progress Report: the whole Progress Information Sequence (UPS-SET-12)."""
    info: JsonDataset = {t.PROCEDURE_STEP_PROGRESS_INFORMATION_SEQUENCE: copy.deepcopy(
        ds.get(t.PROCEDURE_STEP_PROGRESS_INFORMATION_SEQUENCE) or {"vr": "SQ"})}
    return Event(EventType.PROGRESS_REPORT, uid, info)


def assigned(uid: str, ds: JsonDataset) -> Event:
    """UPS Assigned: current Scheduled Station Name and Scheduled Human Performers; the first
    performer's code and organization also at top level (Table CC.2.4-1, AMB)."""
    info: JsonDataset = {}
    _copy(ds, info, t.SCHEDULED_STATION_NAME_CODE_SEQUENCE, t.SCHEDULED_HUMAN_PERFORMERS_SEQUENCE)
    performers = items(ds, t.SCHEDULED_HUMAN_PERFORMERS_SEQUENCE)
    if performers:
        _copy(performers[0], info, t.HUMAN_PERFORMER_CODE_SEQUENCE, t.HUMAN_PERFORMER_ORGANIZATION)
    return Event(EventType.ASSIGNED, uid, info)


def is_assigned(ds: JsonDataset) -> bool:
    return bool(items(ds, t.SCHEDULED_STATION_NAME_CODE_SEQUENCE) or items(ds, t.SCHEDULED_HUMAN_PERFORMERS_SEQUENCE))


def scp_status(status: str) -> Event:
    """SCP Status Change: RESTARTED at start, GOING DOWN at shutdown (UPS-EVT-04).
    Subscriptions and workitems are kept in PostgreSQL, so both lists are WARM START."""
    info = {
        t.SCP_STATUS: element("CS", status),
        t.SUBSCRIPTION_LIST_STATUS: element("CS", "WARM START"),
        t.UPS_LIST_STATUS: element("CS", "WARM START"),
    }
    return Event(EventType.SCP_STATUS_CHANGE, None, info)


def message_id(outbox_id: int) -> int:
    """A Message ID (US, 1..65535) derived from the outbox row id."""
    return outbox_id % 65535 + 1


def affected_instance(workitem_uid: str | None) -> str:
    return workitem_uid or GLOBAL_SUBSCRIPTION


def websocket_message(outbox_id: int, event_type: int, workitem_uid: str | None, info: JsonDataset) -> JsonDataset:
    """The DICOM JSON sent as one WebSocket text frame (UPS-WS-02/03)."""
    msg: dict[str, Any] = {
        AFFECTED_SOP_CLASS_UID: element("UI", UPS_PUSH),
        MESSAGE_ID: element("US", message_id(outbox_id)),
        AFFECTED_SOP_INSTANCE_UID: element("UI", affected_instance(workitem_uid)),
        EVENT_TYPE_ID: element("US", int(event_type)),
    }
    msg.update(info)
    return dict(sorted(msg.items()))


class WebSocketFrames:
    """The text frames of ``websocket_message``, built from the Event Information as the JSON text
    PostgreSQL holds. The rows of one event (one per subscriber) share everything but the Message
    ID: that is put together once per event; each row then costs one string format, whatever the
    number of subscribers. Same members in the same (sorted) order as ``websocket_message``: the
    message fields (group 0000) sort before every Event Information attribute."""

    def __init__(self) -> None:
        self._parts: dict[tuple[int, str | None, str], tuple[str, str]] = {}

    def text(self, outbox_id: int, event_type: int, workitem_uid: str | None, info_json: str) -> str:
        key = (event_type, workitem_uid, info_json)
        parts = self._parts.get(key)
        if parts is None:
            parts = self._parts[key] = _frame_parts(event_type, workitem_uid, info_json)
        return f"{parts[0]}{message_id(outbox_id)}{parts[1]}"


def _frame_parts(event_type: int, workitem_uid: str | None, info_json: str) -> tuple[str, str]:
    def member(tag: str, value: Any) -> str:
        return f'"{tag}":{jsontext.dumps_text(value)}'

    info = info_json.strip()[1:-1].strip()  # the members of the object
    before = "{" + member(AFFECTED_SOP_CLASS_UID, element("UI", UPS_PUSH)) + f',"{MESSAGE_ID}":{{"vr":"US","Value":['
    after = "]}," + member(AFFECTED_SOP_INSTANCE_UID, element("UI", affected_instance(workitem_uid))) + "," + \
        member(EVENT_TYPE_ID, element("US", int(event_type))) + ("," + info if info else "") + "}"
    return before, after
