"""Administration routes (outside the DICOMweb base path), admins only: GET /admin/audit, GET /admin/stats."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..audit import AUDIT_LOG_USED, Actor, record_now
from ..audit.query import parse_time, search
from ..auth.http import client_address, principal_of
from ..auth.principal import ADMIN
from ..reading.stats import reader_stats, reading_groups, stats_csv
from .context import services

AUDIT_LIMIT_MAX = 10000


def _problem(status: int, message: str) -> JSONResponse:
    return JSONResponse({"status": status, "message": message}, status_code=status)


async def audit(request: Request) -> Response:
    """``?subject=&workitem=&study=&since=&until=&limit=``: the audit rows as a JSON array."""
    principal = principal_of(request)
    if not principal.has(ADMIN):
        return _problem(403, "the audit trail is for the admin role")
    q = request.query_params
    try:
        since, until = parse_time(q.get("since"), "since"), parse_time(q.get("until"), "until")
        limit = int(q.get("limit") or AUDIT_LIMIT_MAX)
    except ValueError as exc:
        return _problem(400, str(exc))
    if not 1 <= limit <= AUDIT_LIMIT_MAX:
        return _problem(400, f"limit must be 1 to {AUDIT_LIMIT_MAX}")
    engine = services(request).engine
    rows = await search(engine, subject=q.get("subject"), workitem=q.get("workitem"), study=q.get("study"),
                        since=since, until=until, limit=limit)
    await record_now(engine, AUDIT_LOG_USED, Actor.of(principal, client_address(request)), "audit search",
                     detail=str(request.url.query) or None)
    return JSONResponse(rows)


async def stats(request: Request) -> Response:
    """GET /admin/stats: JSON, or CSV with ?format=csv (or Accept: text/csv); admins only."""
    if not principal_of(request).has(ADMIN):
        return _problem(403, "the reader statistics are for the admin role")
    read_group, arbitration_group = reading_groups(services(request).rules.rules)
    figures = await reader_stats(services(request).engine, read_group, arbitration_group)
    fmt = request.query_params.get("format")
    if fmt == "csv" or (fmt is None and "text/csv" in request.headers.get("accept", "")):
        return Response(stats_csv(figures), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": 'attachment; filename="reader-statistics.csv"'})
    if fmt not in (None, "json"):
        return _problem(400, f"format={fmt!r}: expected json or csv")
    return JSONResponse(figures, headers={"Cache-Control": "no-store"})


def routes() -> list[Route]:
    return [Route("/admin/audit", audit, methods=["GET"]), Route("/admin/stats", stats, methods=["GET"])]
