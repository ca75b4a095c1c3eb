"""GET /metrics (Prometheus text format) after real requests: each counter moves by what was done."""

from __future__ import annotations

import asyncio

import pytest

from .dicom_instances import instance, part10, uid
from .dimse_client import UPSClient
from .event_clients import EventSocket
from .events_support import subscribe, ws_url
from .metrics_client import Samples, sample, scrape
from .reading_flow import read, read_uid, stow

pytestmark = pytest.mark.dimse

GLOBAL = "1.2.840.10008.5.1.4.34.5"


def delta(after: Samples, before: Samples, name: str, **labels: str) -> float:
    return sample(after, name, **labels) - before[(name, *sorted(labels.items()))]


def total(samples: Samples, name: str, **labels: str) -> float:
    return sum(v for (n, *kv), v in samples.items() if n == name and set(labels.items()) <= set(kv))


async def test_metrics_count_requests_ingest_rules_claims_and_events(http, base_url, server):
    before = await scrape(http, base_url)
    study = uid()
    sent = [part10(instance(study, InstanceNumber=n)) for n in (1, 2)]
    async with EventSocket(ws_url(base_url, "METRICS_WS")) as ws:
        await subscribe(http, GLOBAL, "METRICS_WS")
        await stow(http, sent)
        await read(http, read_uid(1, study), "READER_1", "NORMAL")
        while (await ws.next_for(read_uid(1, study))).state != "COMPLETED":
            pass
        after = await scrape(http, base_url)

    assert delta(after, before, "ups_ingest_instances_total", outcome="stored") == 2
    assert delta(after, before, "ups_ingest_bytes_total") == sum(len(p) for p in sent)
    assert delta(after, before, "ups_rule_effects_total", rule="first-read", effect="created") == 1
    assert delta(after, before, "ups_rule_effects_total", rule="second-read", effect="created") == 1
    assert delta(after, before, "ups_claims_total") == 1
    assert delta(after, before, "ups_completions_total", state="COMPLETED") == 1
    assert delta(after, before, "ups_http_requests_total", method="POST", route="/studies", status="200") == 1
    assert delta(after, before, "ups_http_request_duration_seconds_count", method="POST", route="/studies") == 1
    assert delta(after, before, "ups_http_requests_total", method="PUT", route="/workitems/{uid}/state/{requester}",
                 status="200") == 1
    assert not any(study in str(key) or read_uid(1, study) in str(key) for key in after)  # templates, not UIDs
    # the claim's and the completion's events reached the WebSocket
    assert total(after, "ups_event_delivery_lag_seconds_count", channel="websocket") - \
        total(before, "ups_event_delivery_lag_seconds_count", channel="websocket") >= 2
    assert ("ups_db_pool_connections", ("state", "in_use")) in after
    assert after[("ups_outbox_pending", ("channel", "dimse"))] == 0
    assert after[("ups_jobs", ("queue", "retrieve"), ("state", "queued"))] == 0
    assert after[("ups_jobs", ("queue", "blob_uploads"), ("state", "unindexed"))] == 0


async def test_metrics_show_open_dimse_associations(http, base_url, server):
    client = await asyncio.to_thread(UPSClient("127.0.0.1", server.settings.dimse_port).open)
    try:
        assert (await scrape(http, base_url))[("ups_dimse_associations",)] == 1
    finally:
        await asyncio.to_thread(client.close)
    for _ in range(100):  # the server ends its side of the release in its own thread
        if (await scrape(http, base_url))[("ups_dimse_associations",)] == 0:
            break
        await asyncio.sleep(0.05)
    assert (await scrape(http, base_url))[("ups_dimse_associations",)] == 0


async def test_an_unknown_path_is_counted_without_its_path(http, base_url):
    before = await scrape(http, base_url)
    assert (await http.get(f"/no/such/{uid()}")).status_code == 404
    after = await scrape(http, base_url)
    assert delta(after, before, "ups_http_requests_total", method="GET", route="unmatched", status="404") == 1
