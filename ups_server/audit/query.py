"""Reading the audit trail: GET /admin/audit and ``ups-server audit export``."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from ..db.tables import audit_events

COLUMNS = [c.name for c in audit_events.columns]
FORMATS = ("json", "csv")


def parse_time(value: str | None, name: str) -> datetime | None:
    """An ISO 8601 date or date-time (a naive one is UTC); ValueError with a reason otherwise."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not an ISO 8601 date or date-time (e.g. 2026-11-30T10:00:00Z)") \
            from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


async def search(engine: AsyncEngine, *, subject: str | None = None, workitem: str | None = None,
                 study: str | None = None, since: datetime | None = None, until: datetime | None = None,
                 limit: int | None = None) -> list[dict[str, Any]]:
    """Rows in time order; every filter given must hold."""
    query = select(audit_events).order_by(audit_events.c.id)
    for column, value in ((audit_events.c.subject, subject), (audit_events.c.workitem_uid, workitem),
                          (audit_events.c.study_uid, study)):
        if value:
            query = query.where(column == value)
    if since:
        query = query.where(audit_events.c.at >= since)
    if until:
        query = query.where(audit_events.c.at < until)
    if limit:
        query = query.limit(limit)
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    return [{k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()} for row in rows]


def export(rows: list[dict[str, Any]], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(rows, indent=1, ensure_ascii=False) + "\n"
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
