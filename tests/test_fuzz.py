"""Property-based fuzzing of the HTTP API against the real app and a real PostgreSQL (issue 11):
generated DICOM JSON bodies (malformed numbers, strings, types, nesting) and query strings for
every endpoint that takes them. Each answer is below 500, and after each refusal (4xx) the stored
workitems are exactly as before. Seeded (derandomized), bounded: a few seconds per endpoint.

Hypothesis drives a synchronous client in a worker thread; the server under test runs on the
test's event loop meanwhile."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .ups_client import new_uid
from .workitems import DICOM_JSON, new_workitem, state_change

EXAMPLES = 100
FUZZ = settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
                suppress_health_check=list(HealthCheck))

VRS = ["AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "OB", "OW", "PN", "SH", "SL", "SQ",
       "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UN", "UR", "US", "UT", "UV", "XX", ""]
# tags a UPS request uses (state, Transaction UID, priority, sequences, numeric VRs), plus any
TAGS = ["00741000", "00081195", "00741200", "00741204", "00404005", "00404041", "00100010", "00100020",
        "0020000D", "00080018", "00404021", "00741216", "00404025", "00101030", "00280010", "00200013",
        "00404018", "00741238", "00741002", "00404009"]
KEYS = ["PatientWeight", "PatientID", "PatientName", "ProcedureStepState", "ScheduledProcedureStepPriority",
        "ScheduledProcedureStepStartDateTime", "PatientBirthDate", "StudyInstanceUID", "00280010",
        "InstanceNumber", "ScheduledWorkitemCodeSequence.CodeValue", "ScheduledProcessingParametersSequence.00280010",
        "ReferencedRequestSequence.AccessionNumber", "00404009.00080100", "limit", "offset", "includefield",
        "fuzzymatching", "Rows", "WorklistLabel", "SOPInstanceUID", "NotAKeyword", "0010", "zzzzzzzz"]

texts = st.text(st.characters(codec=None, exclude_categories=()), max_size=12)  # NUL, lone surrogates included
numbers = st.one_of(st.integers(min_value=-(2**70), max_value=2**70),
                    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([1e308, -0.0]))
scalars = st.one_of(st.none(), st.booleans(), numbers, texts, st.sampled_from(["nan", "inf", "1e999", "SCHEDULED"]))
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                            st.dictionaries(texts, inner, max_size=3)), max_leaves=8)


def _element(dataset: st.SearchStrategy) -> st.SearchStrategy:
    """Mostly well-formed elements with odd values (to get past the shape checks), some misshapen."""
    value = st.one_of(scalars, dataset, st.fixed_dictionaries({}, optional={"Alphabetic": json_values}))
    well_formed = st.fixed_dictionaries({"vr": st.sampled_from(VRS), "Value": st.lists(value, min_size=1, max_size=3)})
    misshapen = st.fixed_dictionaries({"vr": st.one_of(st.sampled_from(VRS), json_values)}, optional={
        "Value": st.one_of(st.lists(json_values, max_size=3), json_values),
        "InlineBinary": st.one_of(texts, st.just("AAEC")), "BulkDataURI": texts, "Extra": json_values})
    return st.one_of(well_formed, misshapen)


datasets = st.recursive(
    st.just({}),
    lambda inner: st.dictionaries(st.one_of(st.sampled_from(TAGS), texts), _element(inner), min_size=1, max_size=4),
    max_leaves=10)
bodies = st.one_of(datasets, st.lists(datasets, max_size=2), json_values)
queries = st.lists(st.tuples(st.sampled_from(KEYS), st.one_of(texts, st.sampled_from(
    ["nan", "inf", "-inf", "1e999", "*", "a-b", "20261123-20261124", "-", "1.2.3,", "", "9" * 30]))), max_size=4)

ANY_PARAMS = st.lists(st.tuples(st.one_of(st.sampled_from(
    ["limit", "offset", "state", "study", "action", "since", "until", "worklist", "label", "from", "to", "user",
     "outcome", "PatientID", "StudyDate", "includefield", "accept"]), texts), st.one_of(texts, st.sampled_from(
    ["-1", "99999999999999999999", "nan", "2026-13-45", "1.2.3", "*", ""]))), max_size=4)


def _pct(text: str) -> str:
    """Percent-encoded as a client may send it (a lone surrogate as the bytes of its UTF-8 form)."""
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


def _query(params: list[tuple[str, str]]) -> str:
    return "?" + "&".join(f"{_pct(k)}={_pct(v)}" for k, v in params) if params else ""


def _raw(body: Any) -> bytes:
    """JSON text as a client may send it: NaN / Infinity literals, lone surrogates as escapes."""
    return json.dumps(body, allow_nan=True).encode()


class Fuzz:
    """The synchronous side: requests, and the stored workitems before and after each one."""

    def __init__(self, base_url: str):
        self.http = httpx.Client(base_url=base_url, timeout=60)

    def snapshot(self) -> list[Any]:
        r = self.http.get("/workitems?includefield=all&limit=1000", headers=DICOM_JSON)
        assert r.status_code in (200, 204), r.text
        return sorted(json.dumps(ds, sort_keys=True) for ds in (r.json() if r.status_code == 200 else []))

    def check(self, send: Callable[[], httpx.Response]) -> None:
        before = self.snapshot()
        r = send()
        assert r.status_code < 500, (r.status_code, r.text)
        if 400 <= r.status_code < 500:
            assert self.snapshot() == before, f"refused with {r.status_code} but the workitems changed"


@pytest.fixture
async def fuzz(server, base_url):
    server.settings.search_page_size = 1000
    client = Fuzz(base_url)
    scheduled, claimed, txn = new_uid(), new_uid(), new_uid()
    for uid in (scheduled, claimed):
        r = await asyncio.to_thread(client.http.post, f"/workitems?workitem={uid}", json=new_workitem(),
                                    headers=DICOM_JSON)
        assert r.status_code == 201, r.text
    r = await asyncio.to_thread(client.http.put, f"/workitems/{claimed}/state", json=state_change("IN PROGRESS", txn),
                                headers=DICOM_JSON)
    assert r.status_code == 200, r.text
    client.uids = {"scheduled": scheduled, "claimed": claimed, "txn": txn}
    yield client
    client.http.close()


def _run(fuzz: Fuzz, test: Callable[[], None]) -> Any:
    return asyncio.to_thread(test)


async def test_fuzz_create(fuzz):
    @FUZZ
    @given(bodies)
    def create(body):
        fuzz.check(lambda: fuzz.http.post(f"/workitems?workitem={new_uid()}", content=_raw(body), headers=DICOM_JSON))

    await _run(fuzz, create)


async def test_fuzz_update_change_state_and_cancel(fuzz):
    u = fuzz.uids

    @FUZZ
    @given(bodies, st.sampled_from(["update", "state", "cancel", "skip", "reassign"]), ANY_PARAMS)
    def request(body, kind, params):
        if kind in ("skip", "reassign"):  # extensions of the reading page
            url, method = f"/workitems/{u['claimed']}/{kind}" + _query(params), "POST"
        elif kind == "update":
            url, method = f"/workitems/{u['claimed']}?transaction-uid={u['txn']}", "POST"
        elif kind == "state":
            url, method = f"/workitems/{u['scheduled']}/state", "PUT"
        else:
            url, method = f"/workitems/{u['claimed']}/cancelrequest", "POST"
        fuzz.check(lambda: fuzz.http.request(method, url, content=_raw(body), headers=DICOM_JSON))

    await _run(fuzz, request)


async def test_fuzz_search_claim_next_and_filtered_subscription(fuzz):
    @FUZZ
    @given(queries, st.sampled_from(["search", "claim", "subscribe", "qido"]), bodies)
    def request(params, kind, body):
        if kind == "search":
            fuzz.check(lambda: fuzz.http.get("/workitems" + _query(params), headers=DICOM_JSON))
        elif kind == "claim":  # a successful claim changes a workitem: only refusals must leave all as it was
            fuzz.check(lambda: fuzz.http.post("/workitems/claim" + _query(params), content=_raw(body),
                                              headers=DICOM_JSON))
        elif kind == "subscribe":
            filt = ",".join(f"{k}={v}" for k, v in params)
            fuzz.check(lambda: fuzz.http.post("/workitems/1.2.840.10008.5.1.4.34.5.1/subscribers/FUZZ_AE"
                                              + _query([("filter", filt)]), headers=DICOM_JSON))
        else:
            fuzz.check(lambda: fuzz.http.get("/studies" + _query(params), headers=DICOM_JSON))

    await _run(fuzz, request)



async def test_fuzz_other_endpoints(fuzz, server):
    """Retrieve jobs (JSON bodies, ids), the admin, statistics and worklist pages' APIs, QIDO and
    WADO below a study, study deletion: generated bodies, path segments and query strings."""
    root = str(fuzz.http.base_url).removesuffix(server.settings.base_path)
    server.settings.archives = []

    @FUZZ
    @given(st.sampled_from(["jobs", "get", "delete"]), bodies, ANY_PARAMS, texts,
           st.sampled_from(["/retrieve-jobs", "/studies/{s}/series", "/studies/{s}/metadata", "/studies/{s}",
                            "/studies/{s}/series/{s}/instances", root + "/admin/audit", root + "/admin/stats",
                            root + "/api/worklist", root + "/api/worklist-labels", "/retrieve-jobs/{s}"]))
    def request(kind, body, params, segment, path):
        path = path.replace("{s}", _pct(segment) or "x")
        if kind == "jobs":
            fuzz.check(lambda: fuzz.http.post("/retrieve-jobs", content=_raw(body),
                                              headers={"Content-Type": "application/json"}))
        elif kind == "delete":
            fuzz.check(lambda: fuzz.http.delete("/studies/" + (_pct(segment) or "x") + _query(params)))
        else:
            fuzz.check(lambda: fuzz.http.get(path + _query(params), headers={"Accept": "*/*"}))

    await _run(fuzz, request)
