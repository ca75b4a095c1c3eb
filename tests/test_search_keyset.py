"""Keyset paging of GET /workitems (extension, ``web/paging.py``): a page with more matches after it
names the next one in ``Link: <…&after=TOKEN>; rel="next"``; following the links gives every match
exactly once while workitems are created and claimed between the pages; a bad token is 400."""

from __future__ import annotations

import httpx

from .ups_client import claim, create, new_uid, value, warning_text
from .workitems import DICOM_JSON, code, el

SCHEDULED = "SCHEDULED"


def performer(value_: str) -> dict:
    return {"vr": "SQ", "Value": [{"00404009": {"vr": "SQ", "Value": [code(value_)]}}]}


def next_url(r: httpx.Response) -> str | None:
    link = r.headers.get("link")
    if link is None:
        return None
    target, rel = link.split(";", 1)
    assert rel.strip() == 'rel="next"' and target.startswith("<") and target.endswith(">"), link
    return target[1:-1]


async def uids_of(r: httpx.Response) -> list[str]:
    return [value(ds, "00080018") for ds in r.json()] if r.status_code == 200 else []


async def test_following_the_links_gives_every_match_once_while_workitems_change(http):
    label, reader = new_uid(), f"DR-{new_uid()}"
    keys = {"00741202": el("LO", label), "00404034": performer(reader)}
    first = [await create(http, **keys) for _ in range(10)]
    await create(http, **{"00741202": el("LO", label)})  # another reader's: never listed
    params = {"ProcedureStepState": SCHEDULED, "WorklistLabel": label,
              "ScheduledHumanPerformersSequence.HumanPerformerCodeSequence.CodeValue": reader, "limit": "3"}
    r = await http.get("/workitems", params=params, headers=DICOM_JSON)
    seen, added, claimed_unseen = await uids_of(r), [], []
    assert r.status_code == 200 and seen == first[:3]
    assert warning_text(r) == "There are 7 additional results that can be requested"
    while (url := next_url(r)) is not None:
        # between pages: claim one workitem already listed (with offset paging every later match would
        # move up one row and one would never be listed), claim one not yet listed (it no longer
        # matches: never listed), create a new match (listed after the others)
        await claim(http, seen[-1], new_uid())
        unseen = [uid for uid in first if uid not in seen and uid not in claimed_unseen]
        if len(unseen) > 2:
            claimed_unseen.append(unseen[1])
            await claim(http, unseen[1], new_uid())
        if len(added) < 3:
            added.append(await create(http, **keys))
        r = await http.get(url, headers=DICOM_JSON)
        assert r.status_code == 200, r.text
        seen += await uids_of(r)
    expected = [uid for uid in first + added if uid not in claimed_unseen]
    assert len(claimed_unseen) >= 2 and len(seen) == len(set(seen))
    assert seen == expected  # each once, in creation order
    assert warning_text(r) is None  # the last page: nothing remains, no Link


async def test_the_link_keeps_the_request_and_the_token_starts_after_the_page(http):
    label = new_uid()
    uids = [await create(http, **{"00741202": el("LO", label)}) for _ in range(5)]
    r = await http.get("/workitems", params={"WorklistLabel": label, "limit": "2", "offset": "1",
                                             "includefield": "PatientID"}, headers=DICOM_JSON)
    assert await uids_of(r) == uids[1:3]
    url = httpx.URL(next_url(r))
    assert url.path.endswith("/workitems") and "offset" not in url.params
    assert (url.params["WorklistLabel"], url.params["limit"], url.params["includefield"]) == (label, "2", "PatientID")
    r = await http.get(url, headers=DICOM_JSON)
    assert await uids_of(r) == uids[3:5] and next_url(r) is None and warning_text(r) is None
    assert all("00100020" in ds for ds in r.json())
    # offset beside a token skips that many more; the keys in another order are the same search
    token = url.params["after"]
    r = await http.get("/workitems", params={"limit": "5", "after": token, "offset": "1", "WorklistLabel": label},
                       headers=DICOM_JSON)
    assert await uids_of(r) == uids[4:5]


async def test_a_bad_token_is_400_saying_what_to_use(http):
    label = new_uid()
    for _ in range(3):
        await create(http, **{"00741202": el("LO", label)})
    r = await http.get("/workitems", params={"WorklistLabel": label, "limit": "1"}, headers=DICOM_JSON)
    token = httpx.URL(next_url(r)).params["after"]
    tampered = token[:3] + ("A" if token[3] != "A" else "B") + token[4:]
    for params in ({"WorklistLabel": label, "after": "not-a-token"},
                   {"WorklistLabel": label, "after": tampered},
                   {"WorklistLabel": label, "after": token + "AA"},
                   {"WorklistLabel": new_uid(), "after": token},  # made for another search
                   {"after": token}):
        r = await http.get("/workitems", params=params, headers=DICOM_JSON)
        assert r.status_code == 400, (params, r.status_code)
        assert "not a continuation token of this search" in r.json()["message"]
        assert "Link header" in r.json()["message"]
    r = await http.get(f"/workitems?WorklistLabel={label}&after={token}&after={token}", headers=DICOM_JSON)
    assert r.status_code == 400 and "more than once" in r.json()["message"]


async def test_a_worklist_search_with_every_key_pages_its_matches_only(http):
    # state + Worklist Label + performer + start date range + Patient's Name wildcard (the search whose
    # candidates come from the worklist index, ups/search.py worklist_keys): each decoy misses one key
    label, reader = new_uid(), f"DR-{new_uid()}"

    def keys(**changed: dict) -> dict:
        return {"00741202": el("LO", label), "00404034": performer(reader), "00404005": el("DT", "20261005120000"),
                "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Doe^Jane"}]}, **changed}

    matches = [await create(http, **keys()) for _ in range(5)]
    claimed = await create(http, **keys())
    await claim(http, claimed, new_uid())
    for decoy in ({"00741202": el("LO", new_uid())}, {"00404034": performer(f"DR-{new_uid()}")},
                  {"00404005": el("DT", "20261012000000")},
                  {"00100010": {"vr": "PN", "Value": [{"Alphabetic": "Smith^Jane"}]}}):
        await create(http, **keys(**decoy))
    matches.append(await create(http, **keys()))
    params = {"ProcedureStepState": SCHEDULED, "WorklistLabel": label,
              "ScheduledHumanPerformersSequence.HumanPerformerCodeSequence.CodeValue": reader,
              "ScheduledProcedureStepStartDateTime": "20261005000000-20261011235959", "PatientName": "doe*",
              "limit": "4"}
    r = await http.get("/workitems", params=params, headers=DICOM_JSON)
    assert await uids_of(r) == matches[:4]
    assert warning_text(r) == "There are 2 additional results that can be requested"
    r = await http.get(next_url(r), headers=DICOM_JSON)
    assert await uids_of(r) == matches[4:] and next_url(r) is None and warning_text(r) is None
    r = await http.get("/workitems", params={**params, "offset": "4"}, headers=DICOM_JSON)
    assert await uids_of(r) == matches[4:] and warning_text(r) is None
