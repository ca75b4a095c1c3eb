"""Update Workitem (N-SET / POST /workitems/{uid}): UPS-SET-01..14, UPS-TXN-04/05/10."""

from __future__ import annotations

import pytest

from ups_server.ups.errors import Outcome, Transaction, http_status
from ups_server.ups.states import UPDATE

from .ups_client import claim, create, in_state, retrieve, update, value, warning_text
from .workitems import DICOM_JSON, code, el

TXN = "1.2.826.0.1.3680043.10.5.1"
OTHER = "1.2.826.0.1.3680043.10.5.2"
COMMENT = {"00400400": el("LT", "updated comment")}


async def test_scheduled_without_transaction_uid(http):
    # UPS-SET-01
    uid = await create(http)
    r = await update(http, uid, COMMENT)
    assert r.status_code == 200, r.text
    assert value(await retrieve(http, uid), "00400400") == "updated comment"


async def test_update_response_and_character_set(http):
    # UPS-SET-14: POST /workitems/{uid}, one dataset, 200 with no payload;
    # UPS-SET-13: the Specific Character Set of the request is kept with the values it describes
    uid = await create(http)
    r = await update(http, uid, {"00080005": el("CS", "ISO_IR 192"), "00400400": el("LT", "Müller, Ærø")})
    assert r.status_code == 200 and r.content == b"", r.text
    stored = await retrieve(http, uid)
    assert value(stored, "00080005") == "ISO_IR 192" and value(stored, "00400400") == "Müller, Ærø"


async def test_scheduled_with_transaction_uid_is_refused(http):
    # UPS-TXN-04 / AMB-07: C310 -> 409 "did not reference a claimed Workitem"
    uid = await create(http)
    before = await retrieve(http, uid)
    r = await update(http, uid, COMMENT, TXN)
    assert r.status_code == 409, r.text
    assert warning_text(r) == "The target URI did not reference a claimed Workitem."
    assert await retrieve(http, uid) == before


@pytest.mark.parametrize("form", ["transaction-uid", "Transaction-uid", "transaction", "bare", "body", "put"])
async def test_in_progress_transaction_uid_forms(http, form):
    # UPS-SET-02 / UPS-TXN-10 / DESIGN.md: every place clients put the Transaction UID
    uid = await create(http)
    await claim(http, uid, TXN)
    body = dict(COMMENT)
    url = f"/workitems/{uid}"
    if form in ("transaction-uid", "Transaction-uid", "transaction"):
        url += f"?{form}={TXN}"
    elif form == "bare":
        url += f"?{TXN}"
    elif form == "body":
        body["00081195"] = el("UI", TXN)
    else:
        url += f"?transaction-uid={TXN}"
    method = http.put if form == "put" else http.post  # PUT: alias of Update (DESIGN.md)
    r = await method(url, json=body, headers=DICOM_JSON)
    assert r.status_code == 200, r.text
    stored = await retrieve(http, uid)
    assert value(stored, "00400400") == "updated comment"
    assert "00081195" not in stored  # UPS-TXN-07


@pytest.mark.parametrize("txn", [None, OTHER])
async def test_in_progress_wrong_transaction_uid(http, txn):
    # UPS-SET-02 / UPS-TXN-05: C301 -> 400, nothing modified. The Warning comes from Update's own
    # list (PS3.18 11.6.3.2), which has no Transaction UID texts: those belong to Change State.
    uid = await create(http)
    await claim(http, uid, TXN)
    before = await retrieve(http, uid)
    r = await update(http, uid, COMMENT, txn)
    assert r.status_code == 400, r.text
    assert warning_text(r) == "The target URI did not reference a claimed Workitem."
    assert await retrieve(http, uid) == before


# PS3.18 11.6.3.2: the only Warning texts of Update Workitem.
UPDATE_WARNINGS = {
    "The Workitem was updated with modifications.",
    "Requested optional Attributes are not supported.",
    "The target URI did not reference a claimed Workitem.",
    "The submitted request is inconsistent with the current state of the Workitem.",
}


def test_every_update_refusal_warns_from_the_update_list():
    # every refusal the N-SET state table can give, answered to Update, carries an Update text
    refusals = {o for o in UPDATE.values() if isinstance(o, Outcome)}
    assert refusals  # the table has refusals to check
    for outcome in refusals:
        _status, warning = http_status(outcome, Transaction.UPDATE)
        assert warning in UPDATE_WARNINGS, (outcome, warning)


@pytest.mark.parametrize("state", ["COMPLETED", "CANCELED"])
async def test_final_states_may_not_be_updated(http, state):
    # UPS-SET-03: C300 -> 400 (PS3.18 11.6.2) + Warning
    uid = await in_state(http, state, TXN)
    before = await retrieve(http, uid)
    r = await update(http, uid, COMMENT, TXN)
    assert r.status_code == 400, r.text
    assert warning_text(r) == "The submitted request is inconsistent with the current state of the Workitem."
    assert await retrieve(http, uid) == before


async def test_unknown_workitem(http):
    # UPS-SET-11: C307 -> 404
    r = await update(http, "1.2.826.0.1.3680043.10.5.404", COMMENT)
    assert r.status_code == 404, r.text


NOT_ALLOWED = {
    "00741000": el("CS", "COMPLETED"),  # UPS-SET-04: use Change State
    "00080016": el("UI", "1.2.3"),  # UPS-SET-05 ...
    "00080018": el("UI", "1.2.3"),
    "00100010": el("PN", "Other^Name"),
    "00100020": el("LO", "OTHER"),
    "00100021": el("LO", "ISSUER"),
    "00100030": el("DA", "19700101"),
    "00100040": el("CS", "M"),
    "00380010": el("LO", "ADM"),
    "00380014": {"vr": "SQ", "Value": [{"00400031": el("UT", "NS")}]},
    "00081080": el("LO", "diagnosis"),
    "0040A370": {"vr": "SQ", "Value": [{"0020000D": el("UI", "1.2.3")}]},
    "00741224": {"vr": "SQ", "Value": [{"00081150": el("UI", "1.2.3"), "00081155": el("UI", "1.2.4")}]},
    "00404010": el("DT", "20260101000000"),
}


@pytest.mark.parametrize("tag", list(NOT_ALLOWED))
async def test_not_allowed_attributes(http, tag):
    # UPS-SET-04/05: refused (400), nothing modified (UPS-SET-08)
    uid = await create(http)
    before = await retrieve(http, uid)
    r = await update(http, uid, {**COMMENT, tag: NOT_ALLOWED[tag]})
    assert r.status_code == 400, r.text
    assert await retrieve(http, uid) == before


@pytest.mark.parametrize(("tag", "elem"), [
    ("00741200", {"vr": "CS"}), ("00741204", {"vr": "LO"}), ("00404041", {"vr": "CS"}),
    ("00741200", el("CS", "URGENT")), ("00404005", el("DT", "soon")),
])
async def test_invalid_values(http, tag, elem):
    # Table CC.2.5-3 N-SET "3/1": present means valued; enumerations (UPS-SET-08: no change)
    uid = await create(http)
    before = await retrieve(http, uid)
    r = await update(http, uid, {tag: elem})
    assert r.status_code == 400, r.text
    assert await retrieve(http, uid) == before


async def test_settable_attributes_and_modification_datetime(http):
    # UPS-SET-06 settable keys; UPS-SET-09 modification datetime set at each SET
    uid = await create(http)
    first = value(await retrieve(http, uid), "00404010")
    changes = {
        "00741200": el("CS", "HIGH"), "00741204": el("LO", "New label"), "00741202": el("LO", "WL2"),
        "00404005": el("DT", "20261124080000"), "00404011": el("DT", "20261124090000"),
        "00404041": el("CS", "INCOMPLETE"), "0020000D": el("UI", "1.2.826.0.1.3680043.10.5.77"),
        "00404025": {"vr": "SQ", "Value": [code("WS1")]},
    }
    r = await update(http, uid, changes)
    assert r.status_code == 200, r.text
    stored = await retrieve(http, uid)
    for tag, elem in changes.items():
        assert stored[tag] == elem, tag
    assert value(stored, "00404010") > first
    # matching columns follow the dataset: the new values are searchable
    r = await http.get("/workitems", params={"ScheduledProcedureStepPriority": "HIGH",
                                             "ProcedureStepLabel": "New label"}, headers=DICOM_JSON)
    assert [value(d, "00080018") for d in r.json()] == [uid]


async def test_sequence_replacement_and_idempotence(http):
    # UPS-SET-07: a sequence in an update replaces the stored one; UPS-SET-08: repeatable
    uid = await create(http, **{"00404025": {"vr": "SQ", "Value": [code("A"), code("B")]}})
    new = {"00404025": {"vr": "SQ", "Value": [code("C")]}}
    for _ in range(2):
        r = await update(http, uid, new)
        assert r.status_code == 200, r.text
        stored = await retrieve(http, uid)
        assert stored["00404025"] == new["00404025"]


async def test_progress_update_in_progress(http):
    # UPS-SET-06: Progress Information Sequence items may be set while IN PROGRESS
    uid = await create(http)
    await claim(http, uid, TXN)
    progress = {"00741002": {"vr": "SQ", "Value": [{"00741004": {"vr": "DS", "Value": [50]},
                                                     "00741006": el("ST", "half way")}]}}
    r = await update(http, uid, progress, TXN)
    assert r.status_code == 200, r.text
    assert (await retrieve(http, uid))["00741002"] == progress["00741002"]


async def test_transaction_uid_in_query_and_body_must_agree(http):
    # UPS-TXN-10 (REC): both present and different -> 400, nothing modified
    uid = await create(http)
    await claim(http, uid, TXN)
    before = await retrieve(http, uid)
    r = await update(http, uid, {**COMMENT, "00081195": el("UI", OTHER)}, TXN)
    assert r.status_code == 400, r.text
    assert await retrieve(http, uid) == before
