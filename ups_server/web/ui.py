"""The reading page at /ui/ (static files of ups_server/ui) and its read-only JSON: the page's
settings, the worklist listing, and the reader statistics (also GET /admin/stats). Every action
of the page goes through UPS-RS under the base path."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from .. import ui
from ..reading.stats import reader_stats, stats_csv
from ..reading.worklist import WorklistError, WorklistQuery, worklist
from .media import HTTPProblem
from .workitems import REQUESTER_MAX

UI_DIR = Path(ui.__file__).parent


def _page(name: str):
    async def page(request: Request) -> Response:
        csp = "default-src 'self'; connect-src 'self' ws: wss:" + "".join(
            f" {origin}" for origin in _issuer_origins(request))
        return FileResponse(UI_DIR / name, headers={"Content-Security-Policy": csp, "Cache-Control": "no-cache"})

    return page


def _issuer_origins(request: Request) -> list[str]:
    issuer = getattr(request.app.state.settings, "oidc_issuer", None)
    if not issuer:
        return []
    scheme, _, rest = issuer.partition("://")
    return [f"{scheme}://{rest.split('/', 1)[0]}"]


def _groups(request: Request) -> tuple[str, str]:
    """(read group, arbitration group) of the first on_completed rule; ("read", "arbitration") else."""
    engine = getattr(request.app.state.server, "rules", None)
    completed = engine.rules.on_completed if engine is not None else []
    if completed:
        return completed[0].group, completed[0].workitem.group or "arbitration"
    return "read", "arbitration"


async def config(request: Request) -> JSONResponse:
    """What the page needs to know: where UPS-RS is, the viewer link, the result codes, sign-in."""
    server = request.app.state.server
    settings = server.settings
    engine = getattr(server, "rules", None)
    results = [{"value": c.value, "scheme": c.scheme, "meaning": c.meaning or c.value}
               for c in (engine.rules.results if engine is not None else [])]
    auth = getattr(settings, "auth", "none")
    body = {"dicomweb": settings.base_path.rstrip("/"), "viewer_url": settings.viewer_url, "results": results,
            "read_group": _groups(request)[0], "skip_hold": settings.skip_hold, "auth": auth}
    if auth == "oidc":
        body["oidc"] = {"issuer": settings.oidc_issuer, "client_id": getattr(settings, "oidc_client_id", None),
                        "audience": getattr(settings, "oidc_audience", None)}
    return JSONResponse(body, headers={"Cache-Control": "no-cache"})


def _query(request: Request) -> WorklistQuery:
    p = request.query_params
    try:
        limit = int(p.get("limit", "50"))
    except ValueError:
        raise HTTPProblem(400, f"limit={p.get('limit')!r} is not a number") from None
    reader = p.get("reader") or None
    if reader and len(reader) > REQUESTER_MAX:
        raise HTTPProblem(400, f"the reader is longer than {REQUESTER_MAX} characters")
    return WorklistQuery(tab=p.get("tab", "available"), reader=reader, worklist_label=p.get("worklist") or None,
                         priority=p.get("priority") or None, state=p.get("state") or None,
                         text=(p.get("q") or "").strip() or None, sort=p.get("sort", "priority"),
                         after=p.get("after") or None, limit=limit)


async def worklist_rows(request: Request) -> JSONResponse:
    try:
        page = await worklist(request.app.state.server.database.engine, _query(request))
    except WorklistError as exc:
        raise HTTPProblem(400, str(exc)) from None
    return JSONResponse(page, headers={"Cache-Control": "no-store"})


async def worklist_labels(request: Request) -> JSONResponse:
    from sqlalchemy import select

    from ..db.tables import workitems

    async with request.app.state.server.database.engine.connect() as conn:
        labels = (await conn.execute(select(workitems.c.worklist_label).distinct()
                                     .where(workitems.c.worklist_label.is_not(None))
                                     .order_by(workitems.c.worklist_label).limit(200))).scalars().all()
    return JSONResponse(list(labels))


async def stats(request: Request) -> Response:
    """GET /admin/stats: JSON, or CSV with ?format=csv (or Accept: text/csv)."""
    read_group, arbitration_group = _groups(request)
    figures = await reader_stats(request.app.state.server.database.engine, read_group, arbitration_group)
    fmt = request.query_params.get("format")
    if fmt == "csv" or (fmt is None and "text/csv" in request.headers.get("accept", "")):
        return Response(stats_csv(figures), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": 'attachment; filename="reader-statistics.csv"'})
    if fmt not in (None, "json"):
        raise HTTPProblem(400, f"format={fmt!r}: expected json or csv")
    return JSONResponse(figures, headers={"Cache-Control": "no-store"})


_ASSET_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


async def asset(request: Request) -> Response:
    """A script or style sheet of the page (nothing else of the package directory)."""
    name = request.path_params["name"]
    path = UI_DIR / name
    kind = _ASSET_TYPES.get(path.suffix)
    if kind is None or "/" in name or name.startswith(".") or not path.is_file():
        raise HTTPProblem(404, f"/ui/{name} does not exist")
    return FileResponse(path, media_type=kind, headers={"Cache-Control": "no-cache"})


async def to_page(request: Request) -> Response:
    return RedirectResponse("/ui/", status_code=308)


def routes() -> list[BaseRoute]:
    return [
        Route("/ui", to_page),
        Route("/ui/", _page("index.html")),
        Route("/ui/stats", _page("stats.html")),
        Route("/ui/config.json", config),
        Route("/ui/api/worklist", worklist_rows),
        Route("/ui/api/worklist-labels", worklist_labels),
        Route("/admin/stats", stats),
        Route("/ui/{name:str}", asset),
    ]
