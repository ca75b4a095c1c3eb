"""PS3.4 Table CC.1.1-2 (Change State rows) over real HTTP: every (requested state, current
state, Transaction UID missing/correct/incorrect) cell, with the PS3.18 status and Warning
(checklist §2.2), the resulting state, and no modification by refused requests (UPS-STATE-16)."""

from __future__ import annotations

import pytest

from .ups_client import in_state, put_state, retrieve, value, warning_text

S, P, D, X = "SCHEDULED", "IN PROGRESS", "COMPLETED", "CANCELED"
TXN = "1.2.826.0.1.3680043.10.4.1"
OTHER_TXN = "1.2.826.0.1.3680043.10.4.2"

MISSING = "The Transaction UID is missing."
INCORRECT = "The Transaction UID is incorrect."
CONFLICT = "The submitted request is inconsistent with the state of the UPS Instance."
ALREADY_D = "The UPS is already in the requested state of COMPLETED."
ALREADY_X = "The UPS is already in the requested state of CANCELED."

# (requested, current, txn) -> (HTTP status, Warning text, state afterwards, checklist rule).
# txn: "missing" = none sent; "correct" = the claimer's UID; "incorrect" = another UID. A
# SCHEDULED workitem has no UID yet, so any UID sent is taken as the claimer's (AMB-03):
# its "incorrect" column behaves as "correct".
CASES: dict[tuple[str, str, str], tuple[int, str | None, str, str]] = {
    # -> IN PROGRESS
    (P, S, "correct"): (200, None, P, "UPS-STATE-03"),
    (P, S, "incorrect"): (200, None, P, "UPS-STATE-03/AMB-03"),
    (P, S, "missing"): (400, MISSING, S, "UPS-STATE-05"),
    (P, P, "correct"): (409, CONFLICT, P, "UPS-STATE-04 (C302)"),
    (P, P, "incorrect"): (400, INCORRECT, P, "UPS-STATE-04 (C301)"),
    (P, P, "missing"): (400, MISSING, P, "UPS-STATE-05"),
    (P, D, "correct"): (409, CONFLICT, D, "UPS-STATE-06 (C300)"),
    (P, D, "incorrect"): (400, INCORRECT, D, "UPS-STATE-13"),
    (P, D, "missing"): (400, MISSING, D, "UPS-STATE-13"),
    (P, X, "correct"): (409, CONFLICT, X, "UPS-STATE-06 (C300)"),
    (P, X, "incorrect"): (400, INCORRECT, X, "UPS-STATE-13"),
    (P, X, "missing"): (400, MISSING, X, "UPS-STATE-13"),
    # -> COMPLETED
    (D, S, "correct"): (409, CONFLICT, S, "UPS-STATE-08 (C310)"),
    (D, S, "incorrect"): (409, CONFLICT, S, "UPS-STATE-08 (C310)/AMB-03"),
    (D, S, "missing"): (400, MISSING, S, "UPS-STATE-08/AMB-03 (C301)"),
    (D, P, "correct"): (200, None, D, "UPS-STATE-09"),
    (D, P, "incorrect"): (400, INCORRECT, P, "UPS-TXN-06"),
    (D, P, "missing"): (400, MISSING, P, "UPS-TXN-06"),
    (D, D, "correct"): (200, ALREADY_D, D, "UPS-STATE-11 (B306)"),
    (D, D, "incorrect"): (400, INCORRECT, D, "UPS-STATE-13"),
    (D, D, "missing"): (400, MISSING, D, "UPS-STATE-13"),
    (D, X, "correct"): (409, CONFLICT, X, "UPS-STATE-12 (C300)"),
    (D, X, "incorrect"): (400, INCORRECT, X, "UPS-STATE-13"),
    (D, X, "missing"): (400, MISSING, X, "UPS-STATE-13"),
    # -> CANCELED
    (X, S, "correct"): (409, CONFLICT, S, "UPS-STATE-08 (C310)"),
    (X, S, "incorrect"): (409, CONFLICT, S, "UPS-STATE-08 (C310)/AMB-03"),
    (X, S, "missing"): (400, MISSING, S, "UPS-STATE-08/AMB-03 (C301)"),
    (X, P, "correct"): (200, None, X, "UPS-STATE-10"),
    (X, P, "incorrect"): (400, INCORRECT, P, "UPS-TXN-06"),
    (X, P, "missing"): (400, MISSING, P, "UPS-TXN-06"),
    (X, D, "correct"): (409, CONFLICT, D, "UPS-STATE-12 (C300)"),
    (X, D, "incorrect"): (400, INCORRECT, D, "UPS-STATE-13"),
    (X, D, "missing"): (400, MISSING, D, "UPS-STATE-13"),
    (X, X, "correct"): (200, ALREADY_X, X, "UPS-STATE-11 (B304)"),
    (X, X, "incorrect"): (400, INCORRECT, X, "UPS-STATE-13"),
    (X, X, "missing"): (400, MISSING, X, "UPS-STATE-13"),
    # -> SCHEDULED: only N-CREATE makes a workitem SCHEDULED (C303; 400 per PS3.18 11.7.1.4)
    **{(S, cur, txn): (400, CONFLICT, cur, "UPS-STATE-07 (C303)")
       for cur in (S, P, D, X) for txn in ("correct", "incorrect", "missing")},
}


def test_table_is_complete():
    assert len(CASES) == 48


@pytest.mark.parametrize(("requested", "current", "txn"), list(CASES), ids=lambda v: str(v).replace(" ", "_"))
async def test_change_state(http, requested, current, txn):
    status, warning, after, rule = CASES[(requested, current, txn)]
    uid = await in_state(http, current, TXN)
    before = await retrieve(http, uid)
    sent = {"correct": TXN, "incorrect": OTHER_TXN, "missing": None}[txn]

    r = await put_state(http, uid, requested, sent)

    assert r.status_code == status, f"{rule}: {r.status_code} {r.text}"
    assert warning_text(r) == warning, rule
    now = await retrieve(http, uid)
    assert value(now, "00741000") == after, rule
    assert "00081195" not in now  # UPS-TXN-07
    if status != 200 or warning:  # refused or already there: nothing modified (UPS-STATE-16)
        assert now == before, rule


@pytest.mark.parametrize("requested", [S, P, D, X])
async def test_change_state_of_unknown_workitem(http, requested):
    # UPS-STATE-14 / UPS-STATE-07: C307 -> 404
    r = await put_state(http, "1.2.826.0.1.3680043.10.4.404", requested, TXN)
    assert r.status_code == 404, r.text
    assert warning_text(r) == "The Target Workitem was not found."


async def test_final_state_requirements_not_met(http):
    # UPS-STATE-09 / UPS-FINAL-01: IN PROGRESS -> COMPLETED without the Performed Procedure
    # information is C304 (409 + conflict Warning) and changes nothing (UPS-STATE-16).
    from .ups_client import claim, create

    uid = await create(http)
    await claim(http, uid, TXN)
    before = await retrieve(http, uid)
    r = await put_state(http, uid, D, TXN)
    assert r.status_code == 409, r.text
    assert warning_text(r) == CONFLICT
    assert "UnifiedProcedureStepPerformedProcedureSequence" in r.json()["message"]
    assert await retrieve(http, uid) == before


async def test_cancel_without_update_fills_final_state(http):
    # UPS-FINAL-02/03/05: claim -> CANCELED with no N-SET (no P attributes needed); the SCP fills the X ones.
    from .ups_client import claim, create

    uid = await create(http)
    await claim(http, uid, TXN)
    r = await put_state(http, uid, X, TXN)
    assert r.status_code == 200, r.text
    item = (await retrieve(http, uid))["00741002"]["Value"][0]
    assert item["00404052"]["Value"][0]  # Procedure Step Cancellation DateTime
    assert item["0074100E"]["Value"][0]["00080100"]["Value"] == ["110513"]
