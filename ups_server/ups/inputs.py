"""Appending Input Information references to SCHEDULED workitems in ONE statement that sends no
dataset, only the new references (the rules' on_store ``append``: every later instance of a study).

Each workitem gets Input Information Sequence (0040,4021) items, one per (study, series): the
Referenced SOP Sequence (0008,1199) of an item the workitem holds for that study and series grows
by the new item's references; an item of a series it does not hold yet is added at the end (what
``rules.templates.add_reference`` does in Python). The Scheduled Procedure Step Modification
DateTime is set, in the dataset and its column. PostgreSQL computes the new dataset from the row
it locks first, so a concurrent change is never lost. A workitem is left alone (and not returned)
when it is absent, no longer SCHEDULED, or already references one of the new instances; the
statement tells the caller the state of each (absent: None), which chooses what to do instead.

Nothing else in the row changes: no other indexed column depends on these attributes, and no UPS
event reports a change of the Input Information (PS3.4 CC.2.4.3). The rows come back with the
dataset before the change (``previous``, read under the row lock) for the listeners.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import DateTime, Text

from ..dicom import jsontext
from ..dicom import tags as dt
from ..dicom.dataset import JsonDataset, element, first, items
from ..dicom.datetime import format_dt, parse_dt
from . import tags as t
from .attributes import SCHEDULED

_SAME_SERIES = ("n.item #> '{0020000D,Value,0}' = e.item #> '{0020000D,Value,0}' "
                "AND n.item #> '{0020000E,Value,0}' = e.item #> '{0020000E,Value,0}'")
_HELD = "coalesce(old.dataset #> '{00404021,Value}', '[]')"

_APPEND = text(f"""
WITH r AS (SELECT * FROM jsonb_to_recordset(CAST(CAST(:rows AS TEXT) AS JSONB)) AS r(uid text, items jsonb, refs jsonb)),
old AS (
    SELECT w.uid, w.dataset FROM workitems AS w JOIN r ON w.uid = r.uid
    WHERE w.state = '{SCHEDULED}' AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements(r.refs) AS p(ref) WHERE w.dataset @> p.ref)
    ORDER BY w.uid FOR UPDATE OF w
), upd AS (
    UPDATE workitems AS w SET
        dataset = jsonb_set(old.dataset, '{{00404021}}', jsonb_build_object('vr', 'SQ', 'Value', (
            SELECT coalesce(jsonb_agg(CASE WHEN n.item IS NULL THEN e.item ELSE jsonb_set(e.item, '{{00081199}}',
                       jsonb_build_object('vr', 'SQ', 'Value',
                                          coalesce(e.item #> '{{00081199,Value}}', '[]') || (n.item #> '{{00081199,Value}}')))
                       END ORDER BY e.i), '[]')
            FROM jsonb_array_elements({_HELD}) WITH ORDINALITY AS e(item, i)
            LEFT JOIN jsonb_array_elements(r.items) AS n(item) ON {_SAME_SERIES}
        ) || (
            SELECT coalesce(jsonb_agg(n.item ORDER BY n.k), '[]') FROM jsonb_array_elements(r.items) WITH ORDINALITY AS n(item, k)
            WHERE NOT EXISTS (SELECT 1 FROM jsonb_array_elements({_HELD}) AS e(item) WHERE {_SAME_SERIES})
        ))) || CAST(CAST(:modified AS TEXT) AS JSONB),
        modification_dt = :modification_dt,
        updated_at = now()
    FROM old JOIN r ON old.uid = r.uid
    WHERE w.uid = old.uid
    RETURNING w.*, old.dataset AS previous
)
SELECT r.uid AS asked, (SELECT x.state FROM workitems AS x WHERE x.uid = r.uid) AS asked_state, upd.*
FROM r LEFT JOIN upd ON upd.uid = r.uid
""").bindparams(bindparam("rows", type_=Text), bindparam("modified", type_=Text),
                bindparam("modification_dt", type_=DateTime))


def _references(item: JsonDataset) -> list[JsonDataset]:
    """Containment patterns, one per SOP Instance of ``item``: "the dataset already references it"."""
    return [{t.INPUT_INFORMATION_SEQUENCE: {"Value": [{dt.REFERENCED_SOP_SEQUENCE: {"Value": [
        {dt.REFERENCED_SOP_INSTANCE_UID: {"Value": [first(ref, dt.REFERENCED_SOP_INSTANCE_UID)]}}]}}]}}
        for ref in items(item, dt.REFERENCED_SOP_SEQUENCE)]


@dataclass
class Appended:
    """What ``append_inputs`` did: the rows written (``previous``: the dataset before), and the state
    of every workitem asked for as the statement began (None: absent)."""

    rows: list[dict[str, Any]]
    states: dict[str, str | None]


async def append_inputs(conn: AsyncConnection, appends: dict[str, list[JsonDataset]]) -> Appended:
    """Append the Input Information items of ``appends`` (workitem UID -> items, one per study and
    series) in ``conn``'s transaction."""
    if not appends:
        return Appended([], {})
    now = format_dt()
    rows = [{"uid": uid, "items": new, "refs": [p for item in new for p in _references(item)]}
            for uid, new in appends.items()]
    result = await conn.execute(_APPEND, {
        "rows": jsontext.dumps_text(rows), "modification_dt": parse_dt(now),
        "modified": jsontext.dumps_text({t.SCHEDULED_PROCEDURE_STEP_MODIFICATION_DATETIME: element("DT", now)})})
    written, states = [], {}
    for row in result.mappings():
        row = dict(row)
        states[row.pop("asked")] = row.pop("asked_state")
        if row["uid"] is not None:
            written.append(row)
    return Appended(written, states)
