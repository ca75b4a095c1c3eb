"""Instance files under ``<data_dir>/blobs``: path from the UIDs; written to a temp file and
fsync'd first, renamed into place inside the store transaction (before the index commits)."""

from __future__ import annotations

import hashlib
import os
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

    def write_temp(self, data: bytes) -> Path:
        """``data`` in a new fsync'd temp file."""
        fd, name = tempfile.mkstemp(dir=self.tmp, suffix=".dcm")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise
        return Path(name)

    @staticmethod
    def sync(path: Path) -> int:
        """fsync an existing (spooled) temp file; its size."""
        with open(path, "rb+") as f:
            os.fsync(f.fileno())
            return os.fstat(f.fileno()).st_size

    def place(self, moves: list[tuple[Path, str]]) -> None:
        """Rename synced temp files to their final paths (atomic; same file system) and fsync each
        directory once, so that the renames are durable before the index commits."""
        directories = set()
        for temp, relative in moves:
            target = self.path(relative)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temp, target)
            directories.add(target.parent)
        for directory in directories:
            fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
