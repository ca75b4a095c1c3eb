"""Which events a workitem change causes (PS3.4 CC.2.4.3, checklist UPS-EVT-02, UPS-SET-12).

Pure functions of ``ups.service.Change``; who receives them is decided by the subscriptions.
"""

from __future__ import annotations

from ..dicom.dataset import JsonDataset, first, items
from ..ups import tags as t
from ..ups.service import Change
from . import messages as m

_PROGRESS_TAGS = (t.PROCEDURE_STEP_PROGRESS, t.PROCEDURE_STEP_PROGRESS_DESCRIPTION,
                  t.PROCEDURE_STEP_COMMUNICATIONS_URI_SEQUENCE)


def _progress(ds: JsonDataset) -> list[object]:
    progress = items(ds, t.PROCEDURE_STEP_PROGRESS_INFORMATION_SEQUENCE)
    item = progress[0] if progress else {}
    return [(item.get(tag) or {}).get("Value") for tag in _PROGRESS_TAGS]


def _assignment(ds: JsonDataset) -> list[object]:
    return [(ds.get(tag) or {}).get("Value") for tag in
            (t.SCHEDULED_STATION_NAME_CODE_SEQUENCE, t.SCHEDULED_HUMAN_PERFORMERS_SEQUENCE)]


def creation_events(change: Change) -> list[m.Event]:
    """To the global subscribers auto-subscribed at creation: State Report, and UPS Assigned
    when station name or human performers are populated (UPS-EVT-02)."""
    events = [m.state_report(change.uid, change.dataset)]
    if m.is_assigned(change.dataset):
        events.append(m.assigned(change.uid, change.dataset))
    return events


def change_events(change: Change) -> list[m.Event]:
    """Events for the existing subscribers of the workitem."""
    ds, previous = change.dataset, change.previous or {}
    if change.kind == "state":
        return [m.state_report(change.uid, ds, change.state)]
    if change.kind == "cancel-requested":
        return [m.cancel_requested(change.uid, change.requester, change.info)]
    if change.kind != "updated":
        return []
    events: list[m.Event] = []
    if first(ds, t.INPUT_READINESS_STATE) != first(previous, t.INPUT_READINESS_STATE):
        events.append(m.state_report(change.uid, ds))
    if _progress(ds) != _progress(previous):
        events.append(m.progress_report(change.uid, ds))
    if _assignment(ds) != _assignment(previous) and m.is_assigned(ds):
        events.append(m.assigned(change.uid, ds))
    return events
