"""The claim-next statement is built once per what it depends on (the query, the access policy's
claim scope, the requester, the reader) and reused for every client address: requests from
several loopback addresses (real sockets) share one built statement."""

from __future__ import annotations

import contextlib

import httpx
import pytest

from .access_support import as_
from .workitems import DICOM_JSON, new_workitem

ADDRESSES = ("127.0.0.1", "127.0.0.2", "127.0.0.3")


@contextlib.asynccontextmanager
async def clients(base_url: str):
    """One HTTP client per loopback address."""
    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(httpx.AsyncClient(
            base_url=base_url, timeout=30, transport=httpx.AsyncHTTPTransport(local_address=address)))
            for address in ADDRESSES]


async def _claim_next(client: httpx.AsyncClient, headers: dict[str, str] | None = None, requester: str = "R1"):
    r = await client.post(f"/workitems/claim?requester={requester}", headers={**DICOM_JSON, **(headers or {})})
    assert r.status_code == 200, r.text


async def _create(client: httpx.AsyncClient, n: int, headers: dict[str, str] | None = None) -> None:
    for _ in range(n):
        r = await client.post("/workitems", json=new_workitem(), headers={**DICOM_JSON, **(headers or {})})
        assert r.status_code == 201, r.text


async def test_one_statement_for_every_client_address(base_url, server):
    async with clients(base_url) as http:
        await _create(http[0], 4)
        for client in http:
            await _claim_next(client)
        assert len(server.ups._claim_statements) == 1
        await _claim_next(http[0], requester="R2")  # another reader (open mode: the requester)
        assert len(server.ups._claim_statements) == 2


@pytest.mark.oidc
async def test_under_oidc_one_statement_per_reader_whatever_its_address(base_url, server, oidc_issuer):
    issuer = oidc_issuer
    async with clients(base_url) as http:
        await _create(http[0], 4, as_(issuer, "boss"))
        for client in http:
            await _claim_next(client, as_(issuer, "reader-a"))
        assert len(server.ups._claim_statements) == 1
        await _claim_next(http[1], as_(issuer, "reader-b"))
        assert len(server.ups._claim_statements) == 2
