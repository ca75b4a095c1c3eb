"""``ups-server retrieve``: queue retrieve jobs on a running server, optionally wait for them.

    ups-server retrieve --study UID [UID ...] | --patient-id ID --accession ACC | --csv FILE
                        [--url http://host:8080/dicom-web] [--token T] [--wait]

With ``--wait`` a progress line (on stderr), then a summary table; exit status 1 when a job ended
``not_found`` or ``failed``, 2 when the server refused the request or could not be reached.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from ..config import Settings

POLL_SECONDS = 0.5
FINAL = ("done", "not_found", "failed")
BAR = 30
STUDY_COLUMNS = ("study_uid", "study", "studyinstanceuid")
PATIENT_COLUMNS = ("patient_id", "patientid", "mrn")
ACCESSION_COLUMNS = ("accession_number", "accessionnumber", "accession")


class Refused(Exception):
    """The request could not be made or the server refused it (exit status 2)."""


def add_retrieve_parser(sub) -> None:
    parser = sub.add_parser(
        "retrieve", help="pull studies from the archives into a running server",
        description="Queue retrieve jobs on a running ups-server (POST {base}/retrieve-jobs): by Study Instance "
                    "UID, by patient ID + accession number, or from a CSV file with a header row naming "
                    "study_uid, or patient_id and accession_number. With --wait: progress, then a summary "
                    "table; exit status 1 when a job ended not_found or failed.")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--study", nargs="+", metavar="UID", help="Study Instance UID(s)")
    what.add_argument("--patient-id", metavar="ID", help="patient ID (MRN); with --accession")
    what.add_argument("--csv", type=Path, metavar="FILE", help="CSV file: study_uid, or patient_id + accession_number")
    parser.add_argument("--accession", metavar="ACC", help="accession number (with --patient-id)")
    parser.add_argument("--url", help="the server's DICOMweb base URL (default: from the server settings, "
                                      "http://127.0.0.1:8080/dicom-web)")
    parser.add_argument("--token", default=os.environ.get("UPS_TOKEN"),
                        help="bearer token under --auth oidc (env UPS_TOKEN)")
    parser.add_argument("--wait", action="store_true", help="wait for the jobs; progress and a summary table")
    parser.set_defaults(handler=run, config=None)


def run(args: argparse.Namespace, settings: Settings) -> int:
    url = (args.url or f"http://{settings.host}:{settings.http_port}{settings.base_path}").rstrip("/")
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    try:
        requests = _requests(args)
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
            ids = [i for body in requests for i in _post(client, body)]
            if not args.wait:
                for job_id in ids:
                    print(f"job {job_id} queued")
                return 0
            jobs = _wait(client, ids)
    except Refused as exc:
        print(f"ups-server retrieve: {exc}", file=sys.stderr)
        return 2
    print(table(jobs))
    return 1 if any(job["state"] in ("not_found", "failed") for job in jobs) else 0


def _requests(args: argparse.Namespace) -> list[dict[str, Any]]:
    if args.study:
        return [{"studies": args.study}]
    if args.patient_id:
        if not args.accession:
            raise Refused("--patient-id needs --accession")
        return [{"patient_id": args.patient_id, "accession_number": args.accession}]
    return read_csv(args.csv)


def read_csv(path: Path) -> list[dict[str, Any]]:
    """The requests of a CSV file: one for all its study UIDs, one per patient ID + accession row."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
    except OSError as exc:
        raise Refused(f"cannot read {path}: {exc}") from None
    studies, lookups = [], []
    for n, row in enumerate(rows, start=2):
        cells = {(k or "").strip().lower().replace(" ", "_"): (v or "").strip() for k, v in row.items()}
        study = next((cells[c] for c in STUDY_COLUMNS if cells.get(c)), "")
        patient = next((cells[c] for c in PATIENT_COLUMNS if cells.get(c)), "")
        accession = next((cells[c] for c in ACCESSION_COLUMNS if cells.get(c)), "")
        if study:
            studies.append(study)
        elif patient and accession:
            lookups.append({"patient_id": patient, "accession_number": accession})
        elif any(cells.values()):
            raise Refused(f"{path}:{n}: needs a study_uid, or a patient_id and an accession_number")
    if not studies and not lookups:
        raise Refused(f"{path}: no rows (expected a header row naming study_uid, or patient_id and "
                      "accession_number)")
    return ([{"studies": studies}] if studies else []) + lookups


def _call(client: httpx.Client, method: str, path: str, **kwargs: Any) -> Any:
    try:
        r = client.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        raise Refused(f"cannot reach {client.base_url}: {exc}") from None
    if r.status_code >= 400:
        try:
            message = r.json().get("message", r.text)
        except ValueError:
            message = r.text
        raise Refused(f"{method} {path}: {r.status_code} {message}")
    return r.json()


def _post(client: httpx.Client, body: dict[str, Any]) -> list[int]:
    return [job["id"] for job in _call(client, "POST", "/retrieve-jobs", json=body)["jobs"]]


def _wait(client: httpx.Client, ids: list[int]) -> list[dict[str, Any]]:
    """Poll until every job (and every study job a lookup queued) has ended; the jobs, in order."""
    pending, done = list(ids), {}
    tty = sys.stderr.isatty()
    last = ""
    while pending:
        for job_id in list(pending):
            job = _call(client, "GET", f"/retrieve-jobs/{job_id}")
            done[job_id] = job
            if job["state"] in FINAL:
                pending.remove(job_id)
                new = [i for i in job.get("jobs", []) if i not in done]
                pending += new
                done.update({i: {"id": i, "state": "queued"} for i in new})
        line = progress(list(done.values()))
        if line != last:
            print(("\r" if tty else "") + line, end="" if tty else "\n", file=sys.stderr, flush=True)
            last = line
        if pending:
            time.sleep(POLL_SECONDS)
    if tty:
        print(file=sys.stderr)
    return [done[i] for i in sorted(done)]


def progress(jobs: list[dict[str, Any]]) -> str:
    finished = sum(job["state"] in FINAL for job in jobs)
    expected = sum(max((job.get("instances_expected") or 0) - (job.get("instances_present_before") or 0), 0)
                   for job in jobs)
    retrieved = sum(job.get("instances_retrieved") or 0 for job in jobs)
    filled = BAR * finished // max(len(jobs), 1)
    return (f"[{'#' * filled}{'.' * (BAR - filled)}] {finished}/{len(jobs)} jobs ended, "
            f"{retrieved}/{expected} instances retrieved")


def table(jobs: list[dict[str, Any]]) -> str:
    """The summary: one row per job (a lookup job shows its patient ID / accession number)."""
    head = ("job", "state", "study", "archive", "present", "retrieved", "error")
    rows = [head]
    for job in jobs:
        what = job.get("study") or f"patient {job.get('patient_id')} accession {job.get('accession_number')}"
        rows.append((str(job["id"]), job["state"], what, job.get("archive") or "-",
                     _count(job.get("instances_present_before")), _count(job.get("instances_retrieved")),
                     job.get("error") or ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head) - 1)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]
                     for r in rows).rstrip()


def _count(value: Any) -> str:
    return "-" if value is None else str(value)
