"""Reading a server's GET /metrics as the tests check it."""

from __future__ import annotations

from collections import Counter

import httpx
from prometheus_client.parser import text_string_to_metric_families

Samples = Counter  # (name, *sorted label items) -> value


async def scrape(http: httpx.AsyncClient, base_url: str) -> Samples:
    """The samples of /metrics of the server whose DICOMweb base URL is ``base_url``."""
    r = await http.get(base_url.rstrip("/").rsplit("/", 1)[0] + "/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    samples: Samples = Counter()
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            samples[(s.name, *sorted(s.labels.items()))] += s.value
    return samples


def sample(samples: Samples, name: str, **labels: str) -> float:
    key = (name, *sorted(labels.items()))
    assert key in samples, f"{key} not exported"
    return samples[key]
