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
                               ae_roles={"MODALITY1": "ingest", "WS1": "reader", "WS2": "reader"},
                               ae_table={"WATCHER_B": "127.0.0.1:9"})  # a DIMSE event channel, never answering


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


def _claim_and_trespass(address, issuer, study: str) -> dict[str, object]:
    """Reader A claims read 1 over DIMSE with its JWT; reader B (its own JWT, the same calling AE)
    looks for it and acts on it with A's Transaction UID; an AE without identity tries UPS."""
    from ups_server.dicom.uids import name_based_uid

    from .dimse_client import UPSClient
    from .workitems import el, performed_procedure, state_change

    one = name_based_uid(f"1-{study}")
    out: dict[str, object] = {}
    txn = "1.2.826.0.1.3680043.10.3.77"
    with UPSClient(*address, calling_ae="WORKSTATION", jwt=issuer.token("reader-a", ("reader",))) as a:
        out["a claims"] = a.action(one, 1, state_change("IN PROGRESS", txn)).status
    with UPSClient(*address, calling_ae="WORKSTATION", jwt=issuer.token("reader-b", ("reader",))) as b:
        _, matches = b.find({"00080018": el("UI"), "0020000D": el("UI", study)})
        out["b finds"] = sorted(m["00080018"]["Value"][0] for m in matches)
        out["b gets"] = b.get(one).status
        out["b sets"] = b.set(one, {**performed_procedure(), "00081195": el("UI", txn)}).status
        out["b completes"] = b.action(one, 1, state_change("COMPLETED", txn)).status
    with UPSClient(*address, calling_ae="STRANGER") as stranger:
        out["no identity finds"] = stranger.find({"00080018": el("UI")})[0]
        out["no identity claims"] = stranger.action(name_based_uid(f"2-{study}"), 1,
                                                    state_change("IN PROGRESS", txn)).status
    return out


async def test_over_dimse_the_reader_is_the_jwt_subject(server, issuer):
    from ups_server.dicom.uids import name_based_uid

    study = "1.2.826.0.1.3680043.10.3.9001"
    await server.ingest.store(instance(study))  # the rules schedule its two reads
    out = await asyncio.to_thread(_claim_and_trespass, server.dimse.address, issuer, study)
    assert out == {
        "a claims": 0x0000,
        "b finds": [name_based_uid(f"2-{study}")],  # blind reading: A's read is not there for B
        "b gets": 0xC307,  # ... nor by N-GET (No such UPS)
        "b sets": 0x0124, "b completes": 0x0124,  # only the claimant acts on a claim
        "no identity finds": 0x0124, "no identity claims": 0x0124,  # no --ae-roles entry: no role
    }


def _as_stations(address, study: str) -> dict[str, int]:
    from pynetdicom.sop_class import UnifiedProcedureStepWatch as UPS_WATCH

    from ups_server.dicom.uids import GLOBAL_SUBSCRIPTION, name_based_uid

    from .dimse_client import UPSClient
    from .workitems import el, state_change

    one, txn = name_based_uid(f"1-{study}"), "1.2.826.0.1.3680043.10.3.78"
    with UPSClient(*address, calling_ae="WS1") as ws1:
        claimed = ws1.action(one, 1, state_change("IN PROGRESS", txn)).status
    with UPSClient(*address, calling_ae="WS2") as ws2:
        other = ws2.action(one, 1, state_change("CANCELED", txn)).status
    with UPSClient(*address, calling_ae="WS1") as ws1:
        again = ws1.get(one).status
    subscribe_ws1 = {"00741234": el("AE", "WS1"), "00741230": el("LO", "FALSE")}
    with UPSClient(*address, calling_ae="WS2") as ws2:
        foreign = ws2.action(GLOBAL_SUBSCRIPTION, 3, subscribe_ws1, sop_class=UPS_WATCH).status
    with UPSClient(*address, calling_ae="STRANGER") as stranger:
        roleless = stranger.action(GLOBAL_SUBSCRIPTION, 3, {**subscribe_ws1, "00741234": el("AE", "STRANGER")},
                                   sop_class=UPS_WATCH).status
    return {"WS1 claims": claimed, "WS2 acts on it": other, "WS1 sees its claim": again,
            "WS2 subscribes WS1": foreign, "STRANGER subscribes": roleless}


async def test_stations_with_ae_roles_hold_their_own_claims(server):
    study = "1.2.826.0.1.3680043.10.3.9002"
    await server.ingest.store(instance(study))
    out = await asyncio.to_thread(_as_stations, server.dimse.address, study)
    assert out == {"WS1 claims": 0x0000, "WS2 acts on it": 0x0124, "WS1 sees its claim": 0x0000,
                   "WS2 subscribes WS1": 0x0124,  # a station manages its own AE title's subscriptions only
                   "STRANGER subscribes": 0x0124}  # no --ae-roles entry: no events either


def _subscribe_to_both_reads(address, issuer, study: str) -> dict[str, int]:
    """Reader A claims read 1; reader B subscribes its AE to read 1, read 2 and an unknown workitem."""
    from pynetdicom.sop_class import UnifiedProcedureStepWatch as UPS_WATCH

    from ups_server.dicom.uids import name_based_uid

    from .dimse_client import UPSClient
    from .workitems import el, state_change

    one, two = name_based_uid(f"1-{study}"), name_based_uid(f"2-{study}")
    with UPSClient(*address, calling_ae="WORKSTATION", jwt=issuer.token("reader-a", ("reader",))) as a:
        claimed = a.action(one, 1, state_change("IN PROGRESS", "1.2.826.0.1.3680043.10.3.79")).status
    subscribe = {"00741234": el("AE", "WATCHER_B"), "00741230": el("LO", "FALSE")}
    with UPSClient(*address, calling_ae="WATCHER_B", jwt=issuer.token("reader-b", ("reader",))) as b:
        return {"A claims": claimed, **{what: b.action(uid, 3, subscribe, sop_class=UPS_WATCH).status
                                        for what, uid in (("B to A's read", one), ("B to its own", two),
                                                          ("B to an unknown", "1.2.826.0.1.3680043.10.3.80"))}}


async def test_subscribing_to_a_workitem_one_may_not_see_is_no_such_ups(server, issuer):
    study = "1.2.826.0.1.3680043.10.3.9003"
    await server.ingest.store(instance(study))
    out = await asyncio.to_thread(_subscribe_to_both_reads, server.dimse.address, issuer, study)
    assert out == {"A claims": 0x0000,
                   "B to A's read": 0xC307,  # blind reading: A's read does not exist for B ...
                   "B to its own": 0x0000,
                   "B to an unknown": 0xC307}  # ... exactly like a workitem that does not
