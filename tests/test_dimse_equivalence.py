"""UPS-SOP-06: the same request over DIMSE and over UPS-RS gives the same answer.

ONE table of cases. Each case prepares its workitem(s) through the shared service, sends
the same request over both protocols (a real pynetdicom association to the DimseServer, and
httpx to the real uvicorn), and checks both answers against the case: the DIMSE status is the
expected ``Outcome``'s, the HTTP status and Warning are written out in the case (never looked up
in ``ups.errors``' HTTP table, which is what this test checks). Search cases check that C-FIND
and GET /workitems return the same workitems.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from ups_server.db.tables import workitems
from ups_server.dicom.dataset import to_pydicom
from ups_server.dicom.uids import FILTERED_GLOBAL_SUBSCRIPTION as FILTERED
from ups_server.dicom.uids import GLOBAL_SUBSCRIPTION as GLOBAL
from ups_server.dicom.uids import UPS_PULL, UPS_PUSH, UPS_QUERY, UPS_WATCH
from ups_server.rules.guard import READER_HOLDS_OTHER_READ, membership
from ups_server.server import Server
from ups_server.ups.errors import Outcome, PolicyOutcome, Transaction
from ups_server.ups.requests import UPSRequest

from .dimse_client import Reply, UPSClient
from .event_clients import EventReceiver
from .workitems import DICOM_JSON, code, el, new_workitem, performed_procedure, state_change

ROOT = "1.2.826.0.1.3680043.10.4"
TXN = f"{ROOT}.900.1"
OTHER_TXN = f"{ROOT}.900.2"
READER = "READER_A"


pytestmark = pytest.mark.dimse


def subscriber(uid: str) -> str:
    """The subscribing AE of a request: SUB_1 for the DIMSE run, SUB_2 for the HTTP run."""
    return f"SUB_{uid.split('.')[-2]}"


@pytest.fixture
def receiver():
    with EventReceiver("SUB") as r:
        yield r


@pytest.fixture
def settings(settings, receiver):
    """Both subscribers in ae_table: a DIMSE subscriber needs an event channel (UPS-SUB-09)."""
    settings.ae_table = {"SUB_1": receiver.address, "SUB_2": receiver.address}
    return settings


# ---- preparing workitems (through the service both protocols share) --------------------------

Prepare = Callable[[Server, str], Awaitable[None]]


async def scheduled(server: Server, uid: str) -> None:
    await server.ups.create(UPSRequest.direct(uid, new_workitem()))


async def in_progress(server: Server, uid: str) -> None:
    await scheduled(server, uid)
    await server.ups.change_state(UPSRequest.state_change(uid, "IN PROGRESS", TXN, READER))


async def performed(server: Server, uid: str) -> None:
    await in_progress(server, uid)
    await server.ups.update(UPSRequest.direct(uid, performed_procedure(), txn=TXN))


async def completed(server: Server, uid: str) -> None:
    await performed(server, uid)
    await server.ups.change_state(UPSRequest.state_change(uid, "COMPLETED", TXN, READER))


async def canceled(server: Server, uid: str) -> None:
    await scheduled(server, uid)
    await server.ups.request_cancel(UPSRequest.direct(uid, requester=READER))


async def nothing(server: Server, uid: str) -> None:
    return None


async def second_read_of_study(server: Server, uid: str) -> None:
    """Two reads of one study (read_group "read"); READER already holds the first one."""
    first_read = f"{uid}.1"
    async with server.ups.engine.begin() as conn:
        for item in (first_read, uid):
            ds = new_workitem(**{"0020000D": el("UI", f"{uid}.0")})  # one study per prepared pair
            await server.ups.create_in(conn, item, ds, columns=membership("read"))
    await server.ups.change_state(UPSRequest.state_change(first_read, "IN PROGRESS", OTHER_TXN, READER))


async def subscribed(server: Server, uid: str) -> None:
    await scheduled(server, uid)
    await server.events.subscribe(uid, subscriber(uid), False)


async def subscribed_globally(server: Server, uid: str) -> None:
    await server.events.subscribe(GLOBAL, subscriber(uid), False)


# ---- requests, each over both protocols ------------------------------------------------------


@dataclass
class Answer:
    """A protocol's answer: the DIMSE status, or the HTTP status + Warning text (+ DICOM status)."""

    dimse: int | None = None
    http: tuple[int, str | None] | None = None
    http_dicom_status: int | None = None


class Dimse:
    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.clients: dict[str, UPSClient] = {}

    def client(self, ae: str) -> UPSClient:
        if ae not in self.clients:
            self.clients[ae] = UPSClient(self.host, self.port, ae).open()
        return self.clients[ae]

    async def call(self, ae: str, method: str, *args: Any, **kwargs: Any) -> Reply:
        return await asyncio.to_thread(getattr(self.client(ae), method), *args, **kwargs)

    def close(self) -> None:
        for c in self.clients.values():
            c.close()


def _warning_text(r: httpx.Response) -> str | None:
    header = r.headers.get("warning")
    if not header:
        return None
    return header.split(": ", 1)[1] if ": " in header else header


def _http_answer(r: httpx.Response) -> Answer:
    dicom = None
    if r.status_code >= 400 and r.headers.get("content-type", "").startswith("application/json"):
        value = r.json().get("dicomStatus")
        dicom = int(value, 16) if value else None
    return Answer(http=(r.status_code, _warning_text(r)), http_dicom_status=dicom)


@dataclass
class Request:
    transaction: Transaction
    dimse: Callable[[Dimse, str], Awaitable[Reply]]
    http: Callable[[httpx.AsyncClient, str], Awaitable[httpx.Response]]


def create(ds: dict[str, Any]) -> Request:
    return Request(
        Transaction.CREATE,
        lambda d, uid: d.call(READER, "create", ds, uid),
        lambda h, uid: h.post(f"/workitems?workitem={uid}", json=ds, headers=DICOM_JSON),
    )


def update(ds: dict[str, Any], txn: str | None) -> Request:
    def dimse(d: Dimse, uid: str) -> Awaitable[Reply]:
        body = {**ds, "00081195": el("UI", txn)} if txn else ds
        return d.call(READER, "set", uid, body, UPS_PUSH, UPS_PULL)

    def http(h: httpx.AsyncClient, uid: str) -> Awaitable[httpx.Response]:
        return h.post(f"/workitems/{uid}" + (f"?transaction-uid={txn}" if txn else ""), json=ds, headers=DICOM_JSON)

    return Request(Transaction.UPDATE, dimse, http)


def change_state(state: str, txn: str | None, requester: str = READER, context: str = UPS_PULL) -> Request:
    """N-ACTION type 1 naming UPS Push, on the Pull context by default (UPS-SOP-02)."""
    return Request(
        Transaction.CHANGE_STATE,
        lambda d, uid: d.call(requester, "action", uid, 1, state_change(state, txn), UPS_PUSH, context),
        lambda h, uid: h.put(f"/workitems/{uid}/state/{requester}", json=state_change(state, txn),
                             headers=DICOM_JSON),
    )


def request_cancel(reason: str | None = None) -> Request:
    info = {"00741238": el("LT", reason)} if reason else None
    return Request(
        Transaction.CANCEL,
        lambda d, uid: d.call(READER, "action", uid, 2, info, UPS_PUSH),
        lambda h, uid: h.post(f"/workitems/{uid}/cancelrequest/{READER}", json=info or {}, headers=DICOM_JSON),
    )


def retrieve() -> Request:
    return Request(
        Transaction.RETRIEVE,
        lambda d, uid: d.call(READER, "get", uid, None, UPS_PUSH, UPS_PULL),
        lambda h, uid: h.get(f"/workitems/{uid}", headers=DICOM_JSON),
    )


def _on(target: str | None, uid: str) -> str:
    return target or uid  # None: the case's own workitem


def subscribe(target: str | None = None, filter_keys: dict[str, Any] | None = None, lock: bool = False) -> Request:
    """N-ACTION 3 on UPS Watch / POST .../subscribers/{aet} (PS3.18 11.10)."""
    def dimse(d: Dimse, uid: str) -> Awaitable[Reply]:
        info = {"00741234": el("AE", subscriber(uid)), "00741230": el("LO", "TRUE" if lock else "FALSE"),
                **{tag: el(_VR[tag], value) for tag, value in (filter_keys or {}).items()}}
        return d.call(READER, "action", _on(target, uid), 3, info, UPS_WATCH, UPS_WATCH)

    def http(h: httpx.AsyncClient, uid: str) -> Awaitable[httpx.Response]:
        params = {"deletionlock": "true" if lock else "false"}
        if filter_keys:
            params["filter"] = ",".join(f"{tag}={value}" for tag, value in filter_keys.items())
        return h.post(f"/workitems/{_on(target, uid)}/subscribers/{subscriber(uid)}", params=params)

    return Request(Transaction.SUBSCRIBE, dimse, http)


def _release(action: int, transaction: Transaction, method: str, suffix: str, target: str | None) -> Request:
    """N-ACTION ``action`` (4 Unsubscribe, 5 Suspend Global) on UPS Watch, and its UPS-RS twin."""
    return Request(
        transaction,
        lambda d, uid: d.call(READER, "action", _on(target, uid), action,
                              {"00741234": el("AE", subscriber(uid))}, UPS_WATCH, UPS_WATCH),
        lambda h, uid: h.request(method, f"/workitems/{_on(target, uid)}/subscribers/{subscriber(uid)}{suffix}"),
    )


def unsubscribe(target: str | None = None) -> Request:
    """DELETE .../subscribers/{aet} (PS3.18 11.11)."""
    return _release(4, Transaction.UNSUBSCRIBE, "DELETE", "", target)


def suspend(target: str | None = None) -> Request:
    """POST .../subscribers/{aet}/suspend (PS3.18 11.12)."""
    return _release(5, Transaction.SUSPEND, "POST", "/suspend", target)


# ---- search corpus ---------------------------------------------------------------------------


def _performer(value: str) -> dict[str, Any]:
    return {"vr": "SQ", "Value": [{
        "00404009": {"vr": "SQ", "Value": [code(value, "99LOCAL", value)]},
        "00404037": el("PN", value), "00404036": el("LO", "Hospital"),
    }]}


CORPUS: dict[str, dict[str, Any]] = {
    "A": new_workitem(**{"00741200": el("CS", "HIGH"), "00741204": el("LO", "Read CT"),
                         "00741202": el("LO", "WL_A"), "00404005": el("DT", "20261123080000"),
                         "00100020": el("LO", "PAT-A"), "00404034": _performer("RADIOLOGIST_1")}),
    "B": new_workitem(**{"00741200": el("CS", "LOW"), "00741204": el("LO", "Read MR"),
                         "00741202": el("LO", "WL_B"), "00404005": el("DT", "20261124080000"),
                         "00100020": el("LO", "PAT-B"), "00404034": _performer("RADIOLOGIST_2")}),
    "C": new_workitem(**{"00741200": el("CS", "MEDIUM"), "00741204": el("LO", "Arbitration"),
                         "00741202": el("LO", "WL_A"), "00404005": el("DT", "20261125080000"),
                         "00100020": el("LO", "PAT-A")}),
}
CLAIMED = {"B"}


def corpus_uid(name: str) -> str:
    return f"{ROOT}.700.{ord(name)}"


async def corpus(server: Server, uid: str) -> None:
    for name, ds in CORPUS.items():
        await server.ups.create(UPSRequest.direct(corpus_uid(name), ds))
        if name in CLAIMED:
            await server.ups.change_state(UPSRequest.state_change(corpus_uid(name), "IN PROGRESS", TXN, READER))


_VR = {"00741200": "CS", "00741204": "LO", "00741202": "LO", "00741000": "CS", "00100020": "LO",
       "00404005": "DT", "00080100": "SH"}


def identifier(path: list[str], value: str) -> dict[str, Any]:
    """A C-FIND identifier matching ``value`` at the tag path, returning the SOP Instance UID."""
    def nest(tags: list[str]) -> dict[str, Any]:
        if len(tags) == 1:
            return {tags[0]: el(_VR[tags[0]], value)}
        return {tags[0]: {"vr": "SQ", "Value": [nest(tags[1:])]}}

    return {"00080018": {"vr": "UI"}, **nest(path)}


@dataclass
class Search:
    path: list[str]  # tags from the top level down
    value: str
    model: str = UPS_PULL

    @property
    def http_params(self) -> dict[str, str]:
        return {".".join(self.path): self.value}


# ---- THE table -------------------------------------------------------------------------------


@dataclass
class Case:
    name: str
    rule: str
    prepare: Prepare
    request: Request | Search
    expected: Outcome | PolicyOutcome | set[str] = Outcome.SUCCESS
    http: tuple[int, str | None] | None = None  # written out: the HTTP status and Warning expected
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.request, Request) and self.http is None:
            raise ValueError(f"case {self.name!r}: write the expected HTTP status and Warning out")


NO_START = {k: v for k, v in new_workitem().items() if k != "00404005"}

CASES = [
    Case("create", "UPS-STATE-01", nothing, create(new_workitem()), http=(201, None)),
    Case("create without start datetime is modified", "UPS-CREATE-07", nothing, create(NO_START),
         Outcome.CREATED_WITH_MODIFICATIONS, http=(201, "The Workitem was created with modifications.")),
    Case("create not SCHEDULED", "UPS-CREATE-01", nothing,
         create(new_workitem(**{"00741000": el("CS", "IN PROGRESS")})), Outcome.NOT_SCHEDULED_AT_CREATE,
         http=(400, "The provided value of UPS State was not SCHEDULED.")),
    Case("create duplicate", "UPS-STATE-02", scheduled, create(new_workitem()), Outcome.DUPLICATE_SOP_INSTANCE,
         http=(409, "The Target Workitem already exists.")),
    Case("claim", "UPS-STATE-03", scheduled, change_state("IN PROGRESS", TXN), http=(200, None)),
    Case("claim on the Push context", "UPS-SOP-02", scheduled, change_state("IN PROGRESS", TXN, context=UPS_PUSH),
         http=(200, None)),
    Case("claim on the Watch context", "UPS-SOP-02", scheduled,
         change_state("IN PROGRESS", TXN, context=UPS_WATCH), http=(200, None)),
    Case("claim without Transaction UID", "UPS-STATE-05", scheduled, change_state("IN PROGRESS", None),
         Outcome.TRANSACTION_UID_MISSING, http=(400, "The Transaction UID is missing.")),
    Case("claim with a Transaction UID that is not a UID", "UPS-TXN-01", scheduled,
         change_state("IN PROGRESS", "not-a-uid"), Outcome.INVALID_ATTRIBUTE_VALUE, http=(400, None)),
    Case("claim with wrong Transaction UID", "UPS-STATE-04", in_progress, change_state("IN PROGRESS", OTHER_TXN),
         Outcome.TRANSACTION_UID_INCORRECT, http=(400, "The Transaction UID is incorrect.")),
    Case("claim twice", "UPS-STATE-04", in_progress, change_state("IN PROGRESS", TXN), Outcome.ALREADY_IN_PROGRESS,
         http=(409, "The submitted request is inconsistent with the state of the UPS Instance.")),
    Case("back to SCHEDULED", "UPS-STATE-07", scheduled, change_state("SCHEDULED", TXN),
         Outcome.ONLY_SCHEDULED_VIA_CREATE,
         http=(400, "The submitted request is inconsistent with the state of the UPS Instance.")),
    Case("complete a SCHEDULED workitem", "UPS-STATE-08", scheduled, change_state("COMPLETED", TXN),
         Outcome.NOT_IN_PROGRESS,
         http=(409, "The submitted request is inconsistent with the state of the UPS Instance.")),
    Case("complete without final-state attributes", "UPS-STATE-09", in_progress, change_state("COMPLETED", TXN),
         Outcome.FINAL_STATE_NOT_MET,
         http=(409, "The submitted request is inconsistent with the state of the UPS Instance.")),
    Case("complete", "UPS-STATE-09", performed, change_state("COMPLETED", TXN), http=(200, None)),
    Case("complete twice", "UPS-STATE-11", completed, change_state("COMPLETED", TXN), Outcome.ALREADY_COMPLETED,
         http=(200, "The UPS is already in the requested state of COMPLETED.")),
    Case("complete with wrong Transaction UID", "UPS-STATE-13", completed, change_state("COMPLETED", OTHER_TXN),
         Outcome.TRANSACTION_UID_INCORRECT, http=(400, "The Transaction UID is incorrect.")),
    Case("change state of unknown workitem", "UPS-STATE-14", nothing, change_state("IN PROGRESS", TXN),
         Outcome.NO_SUCH_UPS, http=(404, "The Target Workitem was not found.")),
    Case("update SCHEDULED", "UPS-SET-01", scheduled, update({"00741204": el("LO", "Relabelled")}, None),
         http=(200, None)),
    Case("update IN PROGRESS with Transaction UID", "UPS-SET-02", in_progress, update(performed_procedure(), TXN),
         http=(200, None)),
    Case("update IN PROGRESS without Transaction UID", "UPS-SET-02", in_progress,
         update(performed_procedure(), None), Outcome.TRANSACTION_UID_MISSING,
         http=(400, "The target URI did not reference a claimed Workitem.")),
    Case("update IN PROGRESS with wrong Transaction UID", "UPS-TXN-05", in_progress,
         update(performed_procedure(), OTHER_TXN), Outcome.TRANSACTION_UID_INCORRECT,
         http=(400, "The target URI did not reference a claimed Workitem.")),
    Case("update COMPLETED", "UPS-SET-03", completed, update({"00741204": el("LO", "x")}, TXN),
         Outcome.MAY_NO_LONGER_BE_UPDATED,
         http=(400, "The submitted request is inconsistent with the current state of the Workitem.")),
    Case("update the state", "UPS-SET-04", scheduled, update({"00741000": el("CS", "COMPLETED")}, None),
         Outcome.INVALID_ATTRIBUTE_VALUE, http=(400, None)),
    Case("update unknown workitem", "UPS-STATE-14", nothing, update({"00741204": el("LO", "x")}, None),
         Outcome.NO_SUCH_UPS, http=(404, "The Target Workitem was not found.")),
    Case("cancel request SCHEDULED", "UPS-STATE-15", scheduled, request_cancel("not needed"),
         http=(202, None)),
    Case("cancel request IN PROGRESS", "UPS-STATE-15", in_progress, request_cancel(), http=(202, None)),
    Case("cancel request COMPLETED", "UPS-STATE-15", completed, request_cancel(),
         Outcome.ALREADY_COMPLETED_CANNOT_CANCEL,
         http=(409, "The submitted request is inconsistent with the state of the UPS Instance.")),
    Case("cancel request CANCELED", "UPS-STATE-15", canceled, request_cancel(), Outcome.ALREADY_CANCELED,
         http=(202, "The UPS is already in the requested state of CANCELED.")),
    Case("cancel request unknown workitem", "UPS-STATE-14", nothing, request_cancel(), Outcome.NO_SUCH_UPS,
         http=(404, "The Target Workitem was not found.")),
    Case("retrieve", "UPS-TXN-07", in_progress, retrieve(), http=(200, None)),
    Case("retrieve unknown workitem", "UPS-STATE-14", nothing, retrieve(), Outcome.NO_SUCH_UPS,
         http=(404, "The Target Workitem was not found.")),
    Case("second read of a study by the same reader", "double reading: distinct readers", second_read_of_study,
         change_state("IN PROGRESS", TXN), READER_HOLDS_OTHER_READ,
         http=(409, "The reader already holds another read of this study.")),
    # subscriptions: N-ACTION 3/4/5 and PS3.18 11.10-11.12, the HTTP answer written out
    Case("subscribe to a workitem", "UPS-SUB-01", scheduled, subscribe(), http=(201, None)),
    Case("subscribe to a workitem with deletion lock", "UPS-SUB-01", scheduled, subscribe(lock=True),
         http=(201, None)),
    Case("subscribe to an unknown workitem", "UPS-SUB-09", nothing, subscribe(), Outcome.NO_SUCH_UPS,
         http=(404, "The Target Workitem was not found.")),
    Case("subscribe globally", "UPS-SUB-04", scheduled, subscribe(GLOBAL), http=(201, None)),
    Case("subscribe globally with a filter", "UPS-SUB-08", scheduled,
         subscribe(FILTERED, {"00741204": "Read CT"}), http=(201, None)),
    Case("unsubscribe from a workitem", "UPS-SUB-02", subscribed, unsubscribe(), http=(200, None)),
    Case("unsubscribe without a subscription", "UPS-SUB-13", scheduled, unsubscribe(), Outcome.NOT_SUBSCRIBED,
         http=(404, "Subscription not found.")),
    Case("unsubscribe from an unknown workitem", "UPS-SUB-13", nothing, unsubscribe(), Outcome.NO_SUCH_UPS,
         http=(404, "The Target Workitem was not found.")),
    Case("unsubscribe globally", "UPS-SUB-02", subscribed_globally, unsubscribe(GLOBAL), http=(200, None)),
    Case("unsubscribe globally without a subscription", "UPS-SUB-13", nothing, unsubscribe(GLOBAL),
         Outcome.NOT_SUBSCRIBED, http=(404, "Subscription not found.")),
    Case("suspend a global subscription", "UPS-SUB-03", subscribed_globally, suspend(GLOBAL), http=(200, None)),
    Case("suspend without a global subscription", "UPS-SUB-14", nothing, suspend(GLOBAL), Outcome.NOT_SUBSCRIBED,
         http=(404, "Subscription not found.")),
    Case("suspend on a workitem", "UPS-SUB-14", subscribed, suspend(), Outcome.ACTION_NOT_APPROPRIATE,
         http=(400, "Specified action not appropriate for specified instance.")),
    # searches (UPS-SOP-06: C-FIND and Search return the same result set)
    Case("search priority", "UPS-QS", corpus, Search(["00741200"], "HIGH"), {"A"}),
    Case("search label wildcard", "UPS-QS", corpus, Search(["00741204"], "Read*"), {"A", "B"}),
    Case("search worklist label", "UPS-QS", corpus, Search(["00741202"], "WL_A"), {"A", "C"}),
    Case("search state", "UPS-QS", corpus, Search(["00741000"], "IN PROGRESS"), {"B"}),
    Case("search patient id", "UPS-QS", corpus, Search(["00100020"], "PAT-A"), {"A", "C"}),
    Case("search start datetime range", "UPS-QS", corpus,
         Search(["00404005"], "20261124000000-20261125235959"), {"B", "C"}),
    Case("search performer code", "UPS-QS", corpus,
         Search(["00404034", "00404009", "00080100"], "RADIOLOGIST_2"), {"B"}),
    Case("search performer code on Watch", "UPS-SOP-03", corpus,
         Search(["00404034", "00404009", "00080100"], "RADIOLOGIST_1", UPS_WATCH), {"A"}),
    Case("search state on Query", "UPS-SOP-03", corpus, Search(["00741000"], "SCHEDULED", UPS_QUERY), {"A", "C"}),
]


@pytest.fixture
async def dimse(server):
    host, port = server.dimse.address
    d = Dimse(host, port)
    yield d
    await asyncio.to_thread(d.close)


async def _run_request(case: Case, server: Server, dimse: Dimse, http: httpx.AsyncClient, uid: str,
                       protocol: str) -> Answer:
    await case.prepare(server, uid)
    request = case.request
    assert isinstance(request, Request)
    if protocol == "dimse":
        reply = await request.dimse(dimse, uid)
        return Answer(dimse=reply.status)
    return _http_answer(await request.http(http, uid))


async def _run_search(search: Search, dimse: Dimse, http: httpx.AsyncClient) -> tuple[set[str], set[str], list]:
    status, matches = await dimse.call(READER, "find", identifier(search.path, search.value), search.model)
    assert status == 0x0000, hex(status)
    r = await http.get("/workitems", params=search.http_params, headers={"Accept": "application/dicom+json"})
    assert r.status_code in (200, 204), r.text
    http_uids = {ds["00080018"]["Value"][0] for ds in (r.json() if r.status_code == 200 else [])}
    dimse_uids = {ds["00080018"]["Value"][0] for ds in matches}
    return dimse_uids, http_uids, matches


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_same_answer_over_dimse_and_http(case: Case, server, dimse, http):
    if isinstance(case.request, Search):
        await case.prepare(server, "")
        dimse_uids, http_uids, matches = await _run_search(case.request, dimse, http)
        expected = {corpus_uid(n) for n in case.expected}
        assert dimse_uids == expected, case.rule
        assert http_uids == expected, case.rule
        # C-FIND returns only the requested keys (UPS-SOP-03 / PS3.4 C.2.2.1)
        requested = set(identifier(case.request.path, case.request.value))
        for match in matches:
            assert set(match) - {"00080005"} <= requested
        return
    expected: Outcome | PolicyOutcome = case.expected  # type: ignore[assignment]
    over_dimse = await _run_request(case, server, dimse, http, f"{ROOT}.1.{CASES.index(case)}", "dimse")
    over_http = await _run_request(case, server, dimse, http, f"{ROOT}.2.{CASES.index(case)}", "http")
    assert over_dimse.dimse == expected.status, f"{case.rule}: DIMSE 0x{over_dimse.dimse:04X}"
    assert over_http.http == case.http, f"{case.rule}: HTTP {over_http.http}"  # status and Warning exactly
    if expected.is_failure:
        assert over_http.http_dicom_status == over_dimse.dimse


# ---- cross-protocol visibility, N-GET, C-CANCEL, allow-list ----------------------------------


async def test_created_over_dimse_is_claimed_over_http(server, dimse, http):  # UPS-SOP-06
    uid = f"{ROOT}.3.1"
    reply = await dimse.call(READER, "create", new_workitem(), uid)
    assert reply.status == Outcome.SUCCESS.status
    r = await http.get(f"/workitems/{uid}", headers=DICOM_JSON)
    assert r.status_code == 200
    assert r.json()[0]["00741000"]["Value"] == ["SCHEDULED"]
    r = await http.put(f"/workitems/{uid}/state/{READER}", json=state_change("IN PROGRESS", TXN), headers=DICOM_JSON)
    assert r.status_code == 200, r.text
    got = await dimse.call(READER, "get", uid, [0x00741000], UPS_PUSH, UPS_PULL)
    assert got.dataset["00741000"]["Value"] == ["IN PROGRESS"]


async def test_created_over_http_is_claimed_and_completed_over_dimse(server, dimse, http):  # UPS-SOP-06
    uid = f"{ROOT}.3.2"
    r = await http.post(f"/workitems?workitem={uid}", json=new_workitem(), headers=DICOM_JSON)
    assert r.status_code == 201, r.text
    # what dcm4che's upsscu sends: N-ACTION naming UPS Push on the Pull context (UPS-SOP-02) ...
    assert (await dimse.call(READER, "action", uid, 1, state_change("IN PROGRESS", TXN), UPS_PUSH, UPS_PULL)).status == 0
    # ... N-SET of the UPS Performed Procedure Sequence with the Transaction UID (UPS-FINAL-07) ...
    body = {**performed_procedure(), "00081195": el("UI", TXN)}
    assert (await dimse.call(READER, "set", uid, body, UPS_PUSH, UPS_PULL)).status == 0
    # ... and N-ACTION COMPLETED
    assert (await dimse.call(READER, "action", uid, 1, state_change("COMPLETED", TXN), UPS_PUSH, UPS_PULL)).status == 0
    r = await http.get(f"/workitems/{uid}", headers=DICOM_JSON)
    assert r.json()[0]["00741000"]["Value"] == ["COMPLETED"]
    assert r.json()[0]["00741216"]["Value"][0]["00404051"]["Value"] == ["20261123101000"]


@pytest.mark.parametrize("ds", [new_workitem(), NO_START], ids=["success", "warning"])
async def test_n_create_without_uid_assigns_one(server, dimse, ds):  # UPS-CREATE-10, PS3.7 10.1.5.1.4
    reply = await dimse.call(READER, "create", ds, None)
    assert reply.status in (Outcome.SUCCESS.status, Outcome.CREATED_WITH_MODIFICATIONS.status)
    uid = reply.affected_uid
    assert uid and reply.dataset["00080018"]["Value"] == [uid]
    assert "00001000" not in reply.dataset
    assert (await server.ups.retrieve(uid))["00741000"]["Value"] == ["SCHEDULED"]


async def test_n_get_returns_only_requested_attributes_never_txn(server, dimse):  # UPS-TXN-07
    uid = f"{ROOT}.3.3"
    await in_progress(server, uid)
    got = await dimse.call(READER, "get", uid, [0x00741000, 0x00741200, 0x00081195], UPS_PUSH, UPS_PULL)
    assert got.status == 0
    assert set(got.dataset) == {"00741000", "00741200"}
    everything = await dimse.call(READER, "get", uid, None, UPS_PUSH, UPS_WATCH)
    assert "00081195" not in everything.dataset
    assert everything.dataset["00080018"]["Value"] == [uid]


async def _wait_for(condition: Callable[[], Awaitable[bool]]) -> None:
    """Wait for a condition (not for a time): the test sequences the server's steps with it."""
    for _ in range(3000):
        if await condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never became true")


async def test_c_find_honours_c_cancel(server, dimse):  # PS3.4 C.4.1.3.1 / Table CC.2.8-2 (FE00)
    """The search is held on a table lock until the C-CANCEL has reached the server, so the
    handler sees it before its first Pending response: FE00 and no matches."""
    for i in range(3):
        await scheduled(server, f"{ROOT}.4.{i}")
    client = dimse.client(READER)
    msg_id = 77

    def find() -> tuple[int, int]:
        pending, final = 0, -1
        for status, _ in client.a.send_c_find(to_pydicom({"00080018": {"vr": "UI"}}), UPS_PULL, msg_id=msg_id):
            if status.Status in (0xFF00, 0xFF01):
                pending += 1
            else:
                final = int(status.Status)
        return pending, final

    def server_association():
        return next(a for a in server.dimse.ae.active_associations if a.requestor.ae_title == READER)

    async with server.ups.engine.connect() as locker, locker.begin():
        await locker.execute(text("LOCK TABLE workitems IN ACCESS EXCLUSIVE MODE"))
        finding = asyncio.create_task(asyncio.to_thread(find))

        async def search_waits_on_lock() -> bool:
            waiting = await locker.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"))
            return waiting.scalar() > 0

        await _wait_for(search_waits_on_lock)
        await asyncio.to_thread(client.a.send_c_cancel, msg_id, None, UPS_PULL)

        async def cancel_received() -> bool:
            return msg_id in server_association().dimse.cancel_req

        await _wait_for(cancel_received)
    pending, final = await finding
    assert final == 0xFE00
    assert pending == 0


@pytest.fixture
def only_known_aes(settings):
    settings.allowed_aes = ["KNOWN_SCU"]


async def test_allow_list_rejects_unknown_calling_ae(only_known_aes, server, caplog):
    host, port = server.dimse.address

    def try_associate(ae: str) -> bool:
        client = UPSClient(host, port, ae)
        try:
            client.open()
        except ConnectionError:
            return False
        client.close()
        return True

    assert await asyncio.to_thread(try_associate, "KNOWN_SCU")
    with caplog.at_level("WARNING", logger="ups_server.dimse.server"):
        assert not await asyncio.to_thread(try_associate, "STRANGER")
    assert any("STRANGER" in r.getMessage() and "allowed_aes" in r.getMessage() for r in caplog.records)


async def test_workitem_rows_match_after_dimse_create(server, dimse):  # UPS-SOP-01
    uid = f"{ROOT}.3.4"
    await dimse.call(READER, "create", new_workitem(), uid)
    async with server.ups.engine.connect() as conn:
        row = (await conn.execute(select(workitems.c.dataset).where(workitems.c.uid == uid))).scalar_one()
    assert row["00080016"]["Value"] == [UPS_PUSH]



async def test_c_find_bad_identifier_is_refused(server, dimse):  # Table CC.2.8-2 (A900)
    two_items = {"00404034": {"vr": "SQ", "Value": [{"00404037": {"vr": "PN"}}, {"00404036": {"vr": "LO"}}]}}
    status, matches = await dimse.call(READER, "find", two_items, UPS_PULL)  # one item per sequence key
    assert status == 0xA900
    assert matches == []


async def test_c_find_with_a_nul_in_a_key_is_refused(server, dimse):  # Table CC.2.8-2 (A900), bad input
    status, matches = await dimse.call(READER, "find", {"00100020": el("LO", "PAT\x00-1")}, UPS_PULL)
    assert status == 0xA900
    assert matches == []


async def test_c_find_never_returns_the_transaction_uid(server, dimse):  # UPS-TXN-07
    uid = f"{ROOT}.3.5"
    await in_progress(server, uid)
    status, matches = await dimse.call(
        READER, "find", {"00080018": el("UI", uid), "00081195": {"vr": "UI"}, "00741000": {"vr": "CS"}}, UPS_PULL)
    assert status == 0x0000
    assert len(matches) == 1
    assert "00081195" not in matches[0]
    assert matches[0]["00741000"]["Value"] == ["IN PROGRESS"]
