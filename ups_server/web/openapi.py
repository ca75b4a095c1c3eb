"""GET /openapi.json: the OpenAPI description of the HTTP API (``openapi.yaml`` beside this module;
``docs/openapi.yaml`` links to it), with the configured base path as its server URL."""

from __future__ import annotations

import copy
import functools
from importlib.resources import files
from typing import Any

import yaml
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


@functools.cache
def document() -> dict[str, Any]:
    return yaml.safe_load((files(__package__) / "openapi.yaml").read_text(encoding="utf-8"))


async def openapi(request: Request) -> JSONResponse:
    doc = copy.deepcopy(document())
    doc["servers"][0]["url"] = request.app.state.settings.base_path.rstrip("/") or "/"
    return JSONResponse(doc)


def routes() -> list[Route]:
    return [Route("/openapi.json", openapi)]
