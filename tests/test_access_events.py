"""Subscriptions and the event WebSocket under --auth oidc: the WebSocket needs the token (header or
access_token); a subscriber AE title belongs to the user who first subscribed it, and only that
user and admins manage its subscriptions or open its WebSocket."""

from __future__ import annotations

from urllib.parse import quote

import pytest
import websockets

from ups_server.dicom.uids import GLOBAL_SUBSCRIPTION

from .access_support import as_, oidc_settings
from .event_clients import EventSocket


@pytest.fixture
def settings(settings, issuer):
    return oidc_settings(settings, issuer)


def ws_url(base_url: str, aet: str, token_header: dict[str, str] | None = None) -> str:
    url = base_url.replace("http://", "ws://") + f"/subscribers/{aet}"
    if token_header:
        url += "?access_token=" + quote(token_header["Authorization"].split(" ", 1)[1])
    return url


async def test_only_the_owner_and_admins_manage_a_subscriber(http, issuer):
    a, b, boss = as_(issuer, "reader-a"), as_(issuer, "reader-b"), as_(issuer, "boss")
    r = await http.post(f"/workitems/{GLOBAL_SUBSCRIPTION}/subscribers/UI_A", headers=a)
    assert r.status_code == 201, r.text
    for method, path in (("POST", f"/workitems/{GLOBAL_SUBSCRIPTION}/subscribers/UI_A"),
                         ("DELETE", f"/workitems/{GLOBAL_SUBSCRIPTION}/subscribers/UI_A"),
                         ("POST", f"/workitems/{GLOBAL_SUBSCRIPTION}/subscribers/UI_A/suspend")):
        r = await http.request(method, path, headers=b)
        assert r.status_code == 403, (method, path, r.text)
    r = await http.delete(f"/workitems/{GLOBAL_SUBSCRIPTION}/subscribers/UI_A", headers=boss)
    assert r.status_code == 200, r.text  # an admin manages any AE's subscriptions


async def test_the_websocket_needs_the_token_of_its_owner(http, base_url, issuer):
    a, b = as_(issuer, "reader-a"), as_(issuer, "reader-b")
    assert (await http.post(f"/workitems/{GLOBAL_SUBSCRIPTION}/subscribers/UI_A2", headers=a)).status_code == 201
    with pytest.raises(websockets.exceptions.InvalidHandshake):
        async with EventSocket(ws_url(base_url, "UI_A2")):
            pass
    with pytest.raises(websockets.exceptions.InvalidHandshake):
        async with EventSocket(ws_url(base_url, "UI_A2", b)):
            pass
    async with EventSocket(ws_url(base_url, "UI_A2", a)) as ws:
        assert not ws.closed.is_set()
