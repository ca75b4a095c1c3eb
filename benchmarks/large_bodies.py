"""What large request bodies cost a running ups-server: its resident memory (VmRSS of
/proc/<pid>/status sampled every 10 ms during the request: the largest growth) and the time to
its answer for

- ``json``: a DICOM JSON body of N integers (``[0,0,...]``, about 2 bytes each) to POST /workitems,
  with Content-Length (the server may refuse it before reading it) and chunked (it may not);
- ``stow``: one STOW-RS part holding a Part 10 instance with M MB of Pixel Data.

The server must run on this machine (its pid is read for the memory figures). Prints ONE JSON line.

    python benchmarks/large_bodies.py --url http://127.0.0.1:8080/dicom-web --pid 1234 --json-mb 50 --stow-mb 200
"""

from __future__ import annotations

import argparse
import io
import json
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage

MB = 2**20


def _status_mb(pid: int, field: str) -> float:
    """A memory figure of /proc/<pid>/status (VmRSS: resident now)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field}")


def _json_chunks(size: int) -> Iterator[bytes]:
    chunk = b"0," * (MB // 2)
    yield b"["
    for _ in range(size // MB):
        yield chunk
    yield b"0]"


def _instance(pixel_mb: int) -> bytes:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = f"2.25.{uuid.uuid4().int}"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = f"2.25.{uuid.uuid4().int}", f"2.25.{uuid.uuid4().int}"
    ds.PatientID, ds.Modality = "BENCH", "OT"
    side = int((pixel_mb * MB) ** 0.5)
    ds.Rows = ds.Columns = side
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation, ds.SamplesPerPixel = 7, 0, 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = bytes(side * side)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _measure(pid: int, http: httpx.Client, path: str, **request) -> dict:
    before = _status_mb(pid, "VmRSS")
    highest = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.01):
            highest.append(_status_mb(pid, "VmRSS"))

    sampler = threading.Thread(target=sample)
    sampler.start()
    start = time.perf_counter()
    try:
        r = http.post(path, **request)
    finally:
        done.set()
        sampler.join()
    return {"status": r.status_code, "seconds": round(time.perf_counter() - start, 2),
            "rss_before_mb": round(before), "rss_growth_mb": round(max(highest) - before)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8080/dicom-web")
    parser.add_argument("--pid", type=int, required=True, help="pid of the ups-server process")
    parser.add_argument("--json-mb", type=int, default=50)
    parser.add_argument("--stow-mb", type=int, default=200)
    args = parser.parse_args()
    headers = {"Content-Type": "application/dicom+json"}
    out: dict = {}
    with httpx.Client(base_url=args.url, timeout=600) as http:
        json_body = b"".join(_json_chunks(args.json_mb * MB))
        out["json_content_length"] = _measure(args.pid, http, "/workitems", content=json_body, headers=headers)
        del json_body
        out["json_chunked"] = _measure(args.pid, http, "/workitems", content=_json_chunks(args.json_mb * MB),
                                       headers=headers)
        part = _instance(args.stow_mb)
        boundary = "BENCH"
        stow = (f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + part
                + f"\r\n--{boundary}--\r\n".encode())
        del part
        ctype = f'multipart/related; type="application/dicom"; boundary={boundary}'
        out["stow_part"] = _measure(args.pid, http, "/studies", content=stow, headers={"Content-Type": ctype})
    out["json_mb"], out["stow_mb"] = args.json_mb, args.stow_mb
    print(json.dumps(out))


if __name__ == "__main__":
    main()
