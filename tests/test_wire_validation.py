"""Every class of malformed input of issue 11 against the real app: a 400 with a reason, the
connection kept, nothing stored."""

from __future__ import annotations

import asyncio

import pytest
import uvicorn
from starlette.routing import Route

from ups_server.web.app import create_app

from .ups_client import create, new_uid, put_state, retrieve
from .workitems import DICOM_JSON

GOOD = ('"00741000":{"vr":"CS","Value":["SCHEDULED"]},"00741200":{"vr":"CS","Value":["MEDIUM"]},'
        '"00404005":{"vr":"DT","Value":["20261123100000"]},"00404041":{"vr":"CS","Value":["READY"]}')

BAD_DATASETS = {
    "NaN": '"00101030":{"vr":"DS","Value":[NaN]}',
    "Infinity": '"00101030":{"vr":"DS","Value":[Infinity]}',
    "-Infinity": '"00101030":{"vr":"DS","Value":[-Infinity]}',
    "1e999": '"00101030":{"vr":"DS","Value":[1e999]}',
    "lone surrogate": '"00100020":{"vr":"LO","Value":["a\\ud800b"]}',
    "lone surrogate in PN": '"00100010":{"vr":"PN","Value":[{"Alphabetic":"\\udc00"}]}',
    "NUL in vr": '"00100020":{"vr":"LO\\u0000","Value":["x"]}',
    "vr an array": '"00100020":{"vr":[]}',
    "NUL in BulkDataURI": '"00420011":{"vr":"OB","BulkDataURI":"http://x/\\u0000"}',
    "NUL in an unknown member": '"00100020":{"vr":"LO","Value":["x"],"Foo\\u0000":"\\u0000"}',
    "NUL in a tag": '"0010\\u00000":{"vr":"LO","Value":["x"]}',
    "number for LO": '"00100020":{"vr":"LO","Value":[5]}',
    "true for UI": '"0020000D":{"vr":"UI","Value":[true]}',
    "PN Alphabetic list": '"00100010":{"vr":"PN","Value":[{"Alphabetic":["a"]}]}',
    "PN number": '"00100010":{"vr":"PN","Value":[{"Alphabetic":5}]}',
    "string for US": '"00280010":{"vr":"US","Value":["x"]}',
    "US out of range": '"00280010":{"vr":"US","Value":[70000]}',
    "float for IS": '"00200013":{"vr":"IS","Value":[1.5]}',
    "object in SQ": '"00404021":{"vr":"SQ","Value":[5]}',
    "InlineBinary not base64": '"00420011":{"vr":"OB","InlineBinary":"###"}',
    "deep sequence": '"00404021":' + '{"vr":"SQ","Value":[{"00404021":' * 200 + '{"vr":"SQ"}' + '}]}' * 200,
    "huge integer": '"00101030":{"vr":"DS","Value":[' + "9" * 5000 + ']}',
}


def _body(extra: str) -> bytes:
    return ("{" + GOOD + "," + extra + "}").encode()


@pytest.mark.parametrize("extra", BAD_DATASETS.values(), ids=BAD_DATASETS.keys())
async def test_create_with_a_malformed_dataset_is_400(http, extra):
    wi = new_uid()
    r = await http.post(f"/workitems?workitem={wi}", content=_body(extra), headers=DICOM_JSON)
    assert r.status_code == 400, r.text
    assert r.json()["message"]
    assert (await http.get(f"/workitems/{wi}", headers=DICOM_JSON)).status_code == 404


@pytest.mark.parametrize("extra", BAD_DATASETS.values(), ids=BAD_DATASETS.keys())
async def test_update_with_a_malformed_dataset_is_400_and_changes_nothing(http, extra):
    wi, txn = await create(http), new_uid()
    assert (await put_state(http, wi, "IN PROGRESS", txn)).status_code == 200
    before = await retrieve(http, wi)
    body = ("{" + extra + "}").encode()
    r = await http.post(f"/workitems/{wi}?transaction-uid={txn}", content=body, headers=DICOM_JSON)
    assert r.status_code == 400, r.text
    assert await retrieve(http, wi) == before


@pytest.mark.parametrize("path", ["state", "cancelrequest"])
@pytest.mark.parametrize("extra", BAD_DATASETS.values(), ids=BAD_DATASETS.keys())
async def test_state_and_cancel_with_a_malformed_dataset_are_400(http, extra, path):
    wi = await create(http)
    before = await retrieve(http, wi)
    body = ('{"00741000":{"vr":"CS","Value":["IN PROGRESS"]},"00081195":{"vr":"UI","Value":["1.2.3"]},'
            + extra + "}").encode()
    method = "PUT" if path == "state" else "POST"
    r = await http.request(method, f"/workitems/{wi}/{path}", content=body, headers=DICOM_JSON)
    assert r.status_code == 400, r.text
    assert await retrieve(http, wi) == before


BAD_BODIES = {
    "100,000 nested arrays": b"[" * 100000 + b"]" * 100000,
    "5,000 nested objects": b'{"00741000":' * 5000 + b"1" + b"}" * 5000,
    "Transaction UID as a number": b'{"00741000":{"vr":"CS","Value":["IN PROGRESS"]},"00081195":{"vr":"UI","Value":[5]}}',
    "state as a number": b'{"00741000":{"vr":"CS","Value":[5]},"00081195":{"vr":"UI","Value":["1.2.3"]}}',
    "array of two": b"[1, 2]",
    "string": b'"x"',
    "null element": b'{"00741000": null}',
    "invalid UTF-8": b'{"00741000":{"vr":"CS","Value":["\xff"]}}',
}


@pytest.mark.parametrize("body", BAD_BODIES.values(), ids=BAD_BODIES.keys())
async def test_change_state_and_claim_next_with_bad_json_are_400(http, body):
    wi = await create(http)
    r = await http.put(f"/workitems/{wi}/state", content=body, headers=DICOM_JSON)
    assert r.status_code == 400, r.text
    r = await http.post("/workitems/claim", content=body, headers=DICOM_JSON)
    assert r.status_code == 400, r.text
    assert (await retrieve(http, wi))["00741000"]["Value"] == ["SCHEDULED"]


NUMERIC_KEYS = ["00101030", "PatientWeight", "00280010", "InstanceNumber"]


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e999", "NaN", "Infinity", "x", "1.5e400"])
@pytest.mark.parametrize("key", ["PatientWeight", "ScheduledProcessingParametersSequence.00280010"])
async def test_a_numeric_key_that_is_not_a_finite_number_is_400(http, key, value):
    await create(http)
    r = await http.get(f"/workitems?{key}={value}", headers=DICOM_JSON)
    assert r.status_code == 400, r.text
    assert "number" in r.json()["message"]
    r = await http.post(f"/workitems/claim?{key}={value}", headers=DICOM_JSON)
    assert r.status_code == 400, r.text
    r = await http.post(f"/workitems/1.2.840.10008.5.1.4.34.5.1/subscribers/SUB_AE?filter={key}={value}",
                        headers=DICOM_JSON)
    assert r.status_code == 400, r.text


async def test_refusals_keep_the_connection_open(http):
    for _ in range(3):
        r = await http.post("/workitems", content=b'{"00101030":{"vr":"DS","Value":[NaN]}}', headers=DICOM_JSON)
        assert r.status_code == 400 and r.headers.get("connection") != "close"


async def test_a_fault_of_the_server_is_500_and_the_connection_stays_open(server):
    """A real bug (here a route that raises) answers 500; the next request on the same socket is served."""

    async def broken(request):
        raise RuntimeError("a bug")

    app = create_app(server, manage_server=False)
    app.router.routes.insert(0, Route("/broken", broken))
    config = uvicorn.Config(app, host="127.0.0.1", port=server.settings.http_port, log_level="critical")
    web = uvicorn.Server(config)
    task = asyncio.create_task(web.serve())
    while not web.started:
        await asyncio.sleep(0.01)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.settings.http_port)
        statuses = []
        for path in ("/broken", "/broken", "/health"):
            writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            await writer.drain()
            head = (await reader.readuntil(b"\r\n\r\n")).decode()
            length = int(next(line.split(":")[1] for line in head.split("\r\n")
                              if line.lower().startswith("content-length")))
            await reader.readexactly(length)
            statuses.append(int(head.split()[1]))
        writer.close()
        assert statuses == [500, 500, 200]
    finally:
        web.should_exit = True
        await task
