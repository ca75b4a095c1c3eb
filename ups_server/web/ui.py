"""The reading page at /ui/ (static files of ups_server/ui, open: the page signs in itself) and
its read-only JSON: the page's settings (/ui/config.json, open) and the worklist listing
(/api/worklist, any role); its statistics come from GET /admin/stats (web/admin.py). Every
action of the page goes through UPS-RS under the base path."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from .. import ui
from ..auth.http import principal_of
from ..auth.principal import ADMIN, ARBITRATOR, READER
from ..reading.worklist import WorklistError, WorklistQuery, worklist, worklist_label_values
from ..rules import access
from .context import services
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
    issuer = request.app.state.settings.oidc_issuer
    if not issuer:
        return []
    scheme, _, rest = issuer.partition("://")
    return [f"{scheme}://{rest.split('/', 1)[0]}"]


async def config(request: Request) -> JSONResponse:
    """What the page needs to know: where UPS-RS is, the viewer link, the result codes, sign-in."""
    settings = request.app.state.settings
    results = [{"value": c.value, "scheme": c.scheme, "meaning": c.meaning or c.value}
               for c in services(request).rules.rules.results]
    auth = settings.auth
    body = {"dicomweb": settings.base_path.rstrip("/"), "viewer_url": settings.viewer_url, "results": results,
            "skip_hold": settings.skip_hold, "auth": auth}
    if auth == "oidc":
        body["oidc"] = {"issuer": settings.oidc_issuer, "client_id": settings.oidc_client_id,
                        "roles_claim": settings.oidc_roles_claim}
    return JSONResponse(body, headers={"Cache-Control": "no-cache"})


def _query(request: Request) -> WorklistQuery:
    """The listing the request asks for, within what its principal may see (rules/access.py:
    blind reading, claim roles, worklists): a signed-in reader is the token's subject (``?reader=``
    is for open mode), and the All tab is for admins."""
    p = request.query_params
    principal = principal_of(request)
    if not principal.has(READER, ARBITRATOR):
        raise HTTPProblem(403, "the worklist is for the reader, arbitrator and admin roles")
    try:
        limit = int(p.get("limit", "50"))
    except ValueError:
        raise HTTPProblem(400, f"limit={p.get('limit')!r} is not a number") from None
    reader = access.reader(principal, p.get("reader") or None)  # the subject once signed in
    if reader and len(reader) > REQUESTER_MAX:
        raise HTTPProblem(400, f"the reader is longer than {REQUESTER_MAX} characters")
    tab = p.get("tab", "available")
    if tab == "all" and not principal.has(ADMIN):
        raise HTTPProblem(403, "the All tab is for the admin role")
    return WorklistQuery(tab=tab, reader=reader, visible=access.visible(principal),
                         worklist_label=p.get("worklist") or None,
                         priority=p.get("priority") or None, state=p.get("state") or None,
                         text=(p.get("q") or "").strip() or None, sort=p.get("sort", "priority"),
                         after=p.get("after") or None, limit=limit)


async def worklist_rows(request: Request) -> JSONResponse:
    try:
        page = await worklist(services(request).engine, _query(request))
    except WorklistError as exc:
        raise HTTPProblem(400, str(exc)) from None
    return JSONResponse(page, headers={"Cache-Control": "no-store"})


async def worklist_labels(request: Request) -> JSONResponse:
    principal = principal_of(request)
    labels = await worklist_label_values(services(request).engine)
    return JSONResponse([label for label in labels if principal.sees_worklist(label)])


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
        Route("/api/worklist", worklist_rows),
        Route("/api/worklist-labels", worklist_labels),
        Route("/ui/{name:str}", asset),
    ]
