"""DIMSE identity under --auth oidc (real associations, a real issuer on loopback): User Identity
Negotiation type 5 (JWT) verified like a bearer token, a positive response when requested; an
invalid JWT rejects the association; without an identity the calling AE has the roles of
--ae-roles only (C-STORE refused 0x0124 without ingest)."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.pdu_primitives import UserIdentityNegotiation
from pynetdicom.sop_class import SecondaryCaptureImageStorage

from ups_server.audit.query import search

from .dicom_instances import instance
from .oidc_issuer import AUDIENCE

pytestmark = pytest.mark.dimse


@pytest.fixture
def settings(settings, issuer):
    return dataclasses.replace(settings, auth="oidc", oidc_issuer=issuer.url, oidc_audience=AUDIENCE,
                               ae_roles={"MODALITY1": "ingest"})


def jwt_identity(token: str, positive_response: bool = True) -> UserIdentityNegotiation:
    item = UserIdentityNegotiation()
    item.user_identity_type = 5
    item.primary_field = token.encode()
    item.positive_response_requested = positive_response
    return item


def store_as(address, calling: str, identity: UserIdentityNegotiation | None = None):
    """(association established?, C-STORE status or None, the server's identity response or None)."""
    ae = AE(ae_title=calling)
    ae.add_requested_context(SecondaryCaptureImageStorage, [ExplicitVRLittleEndian])
    assoc = ae.associate(*address, ae_title="UPS_SERVER", ext_neg=[identity] if identity else None)
    if not assoc.is_established:
        return False, None, None
    try:
        response = assoc.acceptor.user_identity
        status = int(assoc.send_c_store(instance()).Status)
        return True, status, response.server_response if response else None
    finally:
        assoc.release()


async def test_a_jwt_identity_with_ingest_stores(server, issuer):
    token = issuer.token("pacs-service", ("ingest",))
    established, status, response = await asyncio.to_thread(store_as, server.dimse.address, "ANY_AE",
                                                            jwt_identity(token))
    assert established and status == 0x0000
    assert response == b"pacs-service"  # the positive response names the verified subject


async def test_a_jwt_identity_without_ingest_cannot_store(server, issuer):
    token = issuer.token("reader-1", ("reader",))
    established, status, _ = await asyncio.to_thread(store_as, server.dimse.address, "MODALITY1",
                                                     jwt_identity(token, positive_response=False))
    assert established and status == 0x0124  # the token decides, not the AE title


@pytest.mark.parametrize("case", ["expired", "wrong audience", "garbage"])
async def test_an_invalid_jwt_rejects_the_association(server, issuer, case):
    now = int(time.time())
    token = {"expired": lambda: issuer.token(roles=("ingest",), exp=now - 3600, iat=now - 7200),
             "wrong audience": lambda: issuer.token(roles=("ingest",), aud="other"),
             "garbage": lambda: "x.y.z"}[case]()
    established, _, _ = await asyncio.to_thread(store_as, server.dimse.address, "MODALITY1", jwt_identity(token))
    assert not established
    [row] = await search(server.database.engine)  # the failure is audited
    assert (row["event"], row["outcome"], row["ae_title"]) == ("User Authentication", 4, "MODALITY1")


async def test_without_identity_the_ae_roles_apply(server):
    established, status, _ = await asyncio.to_thread(store_as, server.dimse.address, "MODALITY1")
    assert established and status == 0x0000  # --ae-roles MODALITY1=ingest
    established, status, _ = await asyncio.to_thread(store_as, server.dimse.address, "STRANGER")
    assert established and status == 0x0124  # an AE not listed has no role
