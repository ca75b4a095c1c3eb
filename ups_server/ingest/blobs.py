"""Instance files under ``<data_dir>/blobs``: path from the UIDs, temp file + fsync + rename."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path


class BlobStore:
    def __init__(self, root: Path):
        self.root = root
        self.tmp = root / ".tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)

    def relative_path(self, study_uid: str, series_uid: str, sop_uid: str) -> str:
        bucket = hashlib.sha1(study_uid.encode()).hexdigest()[:2]
        return f"{bucket}/{study_uid}/{series_uid}/{sop_uid}.dcm"

    def path(self, relative: str) -> Path:
        return self.root / relative

    def spool(self) -> tempfile._TemporaryFileWrapper:  # type: ignore[type-arg]
        """A temp file on the blob store's file system (so it can be renamed into place)."""
        return tempfile.NamedTemporaryFile(dir=self.tmp, delete=False, suffix=".part")

    def put_bytes(self, relative: str, data: bytes) -> int:
        target = self.path(relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return len(data)

    def put_file(self, relative: str, source: Path) -> int:
        """Move a spooled file into place (fsync'd first); copies across file systems."""
        target = self.path(relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(source, "rb+") as f:
            os.fsync(f.fileno())
        try:
            os.replace(source, target)
        except OSError:
            shutil.copyfile(source, target)
            source.unlink(missing_ok=True)
        return target.stat().st_size
