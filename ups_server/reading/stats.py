"""Reader statistics (GET /admin/stats, /ui/stats), computed in SQL from the workitems.

Per reader and overall, for each window (the last 7 and 28 days, by completion time):
- reads completed: workitems of the read group that became COMPLETED in the window;
- median time per read: claim -> completion (``claimed_at`` -> ``completed_at``), seconds;
- first / second reads: the order in which the reads of a study were completed;
- share sent to arbitration: of the reads whose other read is completed too, the share whose
  study has a workitem of the arbitration group;
- agreement: of those reads, the share whose result (the first Performed Workitem Code of the UPS
  Performed Procedure Sequence) equals the other read's (the next one in completion order, for the
  last read the previous one).
"""

from __future__ import annotations

import csv
import io
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

WINDOWS = (7, 28)
RESULT_PATH = "{00741216,Value,0,00404019,Value,0,00080100,Value,0}"
FIELDS = ("reads_completed", "median_seconds", "first_reads", "second_reads", "arbitration_share", "agreement")

_SQL = text(f"""
WITH reads AS (
    SELECT w.study_uid, w.reader, w.claimed_at, w.completed_at,
           row_number() OVER study AS ordinal,
           count(*) OVER (PARTITION BY w.study_uid) AS reads_of_study,
           w.dataset #>> '{RESULT_PATH}' AS result,
           coalesce(lead(w.dataset #>> '{RESULT_PATH}') OVER study,
                    lag(w.dataset #>> '{RESULT_PATH}') OVER study) AS other_result
    FROM workitems w
    WHERE w.read_group = :read_group AND w.state = 'COMPLETED' AND w.study_uid IN (
        SELECT study_uid FROM workitems
        WHERE completed_at >= now() - make_interval(days => :days) AND read_group = :read_group)
    WINDOW study AS (PARTITION BY w.study_uid ORDER BY w.completed_at, w.seq)
), paired AS (
    SELECT r.*, r.reads_of_study > 1 AS has_other,
           r.study_uid IN (SELECT study_uid FROM workitems WHERE read_group = :arbitration_group) AS arbitrated
    FROM reads r
    WHERE r.completed_at >= now() - make_interval(days => :days)
)
SELECT grouping(reader) = 1 AS overall, reader,
       count(*) AS reads_completed,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM completed_at - claimed_at))
           AS median_seconds,
       count(*) FILTER (WHERE ordinal = 1) AS first_reads,
       count(*) FILTER (WHERE ordinal = 2) AS second_reads,
       avg(arbitrated::int) FILTER (WHERE has_other) AS arbitration_share,
       avg((result IS NOT DISTINCT FROM other_result)::int) FILTER (WHERE has_other) AS agreement
FROM paired
GROUP BY GROUPING SETS ((reader), ())
ORDER BY overall, reader
""")


def reading_groups(rules: Any) -> tuple[str, str]:
    """(read group, arbitration group) of the first on_completed rule of a RuleSet (None or no such
    rule: "read", "arbitration")."""
    completed = rules.on_completed if rules is not None else []
    if completed:
        return completed[0].group, completed[0].workitem.group or "arbitration"
    return "read", "arbitration"


def _figures(row: Any) -> dict[str, Any]:
    def number(value: Any) -> float | None:
        return None if value is None else round(float(value), 4)

    return {"reads_completed": row.reads_completed, "median_seconds": number(row.median_seconds),
            "first_reads": row.first_reads, "second_reads": row.second_reads,
            "arbitration_share": number(row.arbitration_share), "agreement": number(row.agreement)}


async def reader_stats(engine: AsyncEngine, read_group: str = "read",
                       arbitration_group: str = "arbitration") -> dict[str, Any]:
    """{"read_group", "arbitration_group", "windows": [{"days", "overall", "readers": [...]}]}."""
    windows = []
    async with engine.connect() as conn:
        for days in WINDOWS:
            rows = (await conn.execute(_SQL, {"days": days, "read_group": read_group,
                                              "arbitration_group": arbitration_group})).all()
            overall = next((r for r in rows if r.overall), None)
            windows.append({
                "days": days,
                "overall": _figures(overall) if overall else {**dict.fromkeys(FIELDS), "reads_completed": 0},
                "readers": [{"reader": r.reader, **_figures(r)} for r in rows if not r.overall],
            })
    return {"read_group": read_group, "arbitration_group": arbitration_group, "windows": windows}


def stats_csv(stats: dict[str, Any]) -> str:
    """One line per window and reader ("(all)" for the whole service)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["days", "reader", *FIELDS])
    for window in stats["windows"]:
        for reader, figures in [("(all)", window["overall"]),
                                *((r["reader"] or "(anonymous)", r) for r in window["readers"])]:
            writer.writerow([window["days"], reader, *("" if figures[f] is None else figures[f] for f in FIELDS)])
    return out.getvalue()
