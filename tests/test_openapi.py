"""GET /openapi.json: a valid OpenAPI 3.1 description (openapi-spec-validator) naming every
route the app serves, with the configured base path as its server."""

from __future__ import annotations

import httpx
from openapi_spec_validator import validate
from starlette.routing import Mount


def _routes(routes, prefix=""):
    for route in routes:
        if isinstance(route, Mount):
            yield from _routes(route.routes, prefix + route.path)
        else:
            yield prefix + route.path.replace("{name:str}", "{name}")


async def test_openapi_describes_every_route(server, base_url):
    root = base_url.removesuffix(server.settings.base_path)
    async with httpx.AsyncClient() as http:
        r = await http.get(f"{root}/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    validate(doc)
    assert doc["servers"][0]["url"] == server.settings.base_path
    base = server.settings.base_path
    described = {base + p for p in doc["paths"]} | set(doc["x-outside-base-path"]["paths"])
    described |= {base + "/ws/subscribers/{aetitle}"}  # the alias of /subscribers/{aetitle}
    from ups_server.web.app import create_app

    served = set(_routes(create_app(server, manage_server=False).routes))
    assert served - described == set()
