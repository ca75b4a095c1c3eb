"""--log-format json: every line the server writes is one JSON object; the lines of a request carry
its request id (X-Request-ID, echoed), the workitem / study UID its path names, the principal."""

from __future__ import annotations

import asyncio
import io
import json
import logging

import httpx
import pytest
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.sop_class import SecondaryCaptureImageStorage

from ups_server.auth.principal import Principal
from ups_server.logs import JsonFormatter, RequestContext

from .dicom_instances import instance, multipart, part10
from .event_clients import free_port
from .processes import serve, stop
from .workitems import DICOM_JSON, new_workitem


def test_serve_logs_one_json_object_per_line_with_the_request_context(settings, tmp_path):
    port = free_port()
    process = serve(settings.database_url, tmp_path, port, "--log-format", "json")
    base = f"http://127.0.0.1:{port}/dicom-web"
    workitem = "1.2.826.0.1.3680043.10.15.1"
    ds = instance()
    try:
        r = httpx.post(f"{base}/workitems?{workitem}", json=new_workitem(), headers=DICOM_JSON)
        assert r.status_code == 201, r.text
        r = httpx.get(f"{base}/workitems/{workitem}", headers={"X-Request-ID": "reading-room-7:42"})
        assert r.status_code == 200 and r.headers["x-request-id"] == "reading-room-7:42"
        body, ctype = multipart([part10(ds)])
        r = httpx.post(f"{base}/studies", content=body, headers={"Content-Type": ctype, "X-Request-ID": "a b\tc"})
        assert r.status_code == 200
        generated = r.headers["x-request-id"]
        assert generated != "a b\tc" and len(generated) == 32  # not an id a log line could be confused by
    finally:
        stop(process)

    lines = (tmp_path / f"serve-{port}.log").read_text().splitlines()
    entries = [json.loads(line) for line in lines]  # every line is one object
    assert all({"time", "level", "logger", "message"} <= set(e) for e in entries)
    [get] = [e for e in entries if e.get("request_id") == "reading-room-7:42"]
    assert get["workitem_uid"] == workitem and get["status"] == 200 and get["method"] == "GET"
    [stow] = [e for e in entries if e.get("request_id") == generated and e["logger"] == "ups_server.access"]
    assert stow["path"] == "/dicom-web/studies" and "study_uid" not in stow
    assert any(e["message"] == "ups-server ready" for e in entries)


async def test_the_principal_joins_the_lines_once_authenticated():
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("ups_server.test_logs")
    log.addHandler(handler)
    log.setLevel(logging.INFO)

    async def app(scope, receive, send):  # what the Authenticate middleware and a route do
        scope["state"]["principal"] = Principal(subject="dr.house", roles=frozenset({"reader"}))
        log.info("claimed")
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    sent = []

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "PUT", "path": "/dicom-web/studies/1.2.3/series/4.5", "headers": [],
             "state": {}}
    try:
        await RequestContext(app)(scope, None, send)
    finally:
        log.removeHandler(handler)
    [entry] = [json.loads(line) for line in out.getvalue().splitlines()]
    assert entry["message"] == "claimed" and entry["principal"] == "dr.house" and entry["study_uid"] == "1.2.3"
    assert (b"x-request-id", entry["request_id"].encode()) in sent[0]["headers"]


@pytest.mark.dimse
async def test_a_dimse_message_logs_with_its_request_id_and_calling_ae(server):
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    dimse_log = logging.getLogger("ups_server.dimse")
    dimse_log.addHandler(handler)
    level = dimse_log.level
    dimse_log.setLevel(logging.INFO)
    ds = instance()
    ds.StudyInstanceUID = "not a UID"  # refused, with a log line written while the message is handled

    def store() -> int:
        ae = AE(ae_title="MODALITY_7")
        ae.add_requested_context(SecondaryCaptureImageStorage, [ExplicitVRLittleEndian])
        assoc = ae.associate(*server.dimse.address, ae_title="UPS_SERVER")
        try:
            return int(assoc.send_c_store(ds).Status)
        finally:
            assoc.release()

    try:
        assert await asyncio.to_thread(store) == 0xA900
    finally:
        dimse_log.removeHandler(handler)
        dimse_log.setLevel(level)
    [entry] = [e for e in map(json.loads, out.getvalue().splitlines()) if "refused" in e["message"]]
    assert entry["calling_ae"] == "MODALITY_7" and len(entry["request_id"]) == 32
    assert "workitem_uid" not in entry  # a storage message names an instance, not a workitem
