"""Debris after crashes (issue 11): spool files a crashed request left are removed by housekeeping
once older than the grace period, and counted in the log; a request's files younger than that
stay. (Objects without an index row: tests/test_blob_store_s3.py, ingest/uploads.py.)"""

from __future__ import annotations

import logging
import os
import time


async def test_housekeeping_removes_old_spool_files_only(server, caplog):
    spool = server.ingest.blobs.spool_dir
    crashed, crashed_temp, in_flight = spool / "crashed.part", spool / "crashed.dcm", spool / "in-flight.part"
    for path in (crashed, crashed_temp, in_flight):
        path.write_bytes(b"debris")
    past = time.time() - server.ingest.orphan_grace - 60
    for path in (crashed, crashed_temp):
        os.utime(path, (past, past))
    with caplog.at_level(logging.INFO, logger="ups_server.ingest.service"):
        await server.events.housekeeper.run_once()
    assert "removed 2 spool file(s) older than 3600 s" in caplog.text
    assert not crashed.exists() and not crashed_temp.exists() and in_flight.exists()
