"""Where stored instances live: one interface, ``BlobStore``, with two implementations chosen by
``--blob-store``: a directory (``file://PATH``; the default ``<data_dir>/blobs``) and an
S3-compatible bucket (``s3://BUCKET/PREFIX``, through obstore).

What arrives is first spooled to a local file (``spool`` / ``write_temp``); ``put_many`` then
makes it durable in the store under a key no other store ever uses (``new_key``), before the
index row that names it commits (see ``ingest/uploads.py`` for the objects whose row never came).
``read`` streams an object in chunks; ``delete`` removes objects (missing ones are no error).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

_READ_CHUNK = 1 << 20
_PUTS_IN_FLIGHT = 8
MULTIPART_CHUNK = 5 * 1024 * 1024  # S3's smallest part: larger objects go up in parts of this size


class BlobNotFound(LookupError):
    """The store has no object under this key."""


class BlobStore(ABC):
    """Instances by key. ``spool_dir`` is local: incoming parts are written there first."""

    spool_dir: Path
    sync_spool = True  # fsync spooled files (a put renames them into place)

    @staticmethod
    def new_key(study_uid: str, series_uid: str, sop_uid: str) -> str:
        """A key for a new object: from the UIDs, plus a token so that a second store of the same
        instance (a duplicate, a retry after a crash) never overwrites an object a row points at."""
        bucket = hashlib.sha1(study_uid.encode()).hexdigest()[:2]
        return f"{bucket}/{study_uid}/{series_uid}/{sop_uid}.{uuid.uuid4().hex[:12]}.dcm"

    def spool(self) -> tempfile._TemporaryFileWrapper:  # type: ignore[type-arg]
        """A new local temp file for an incoming part (the caller removes it)."""
        return tempfile.NamedTemporaryFile(dir=self.spool_dir, delete=False, suffix=".part")

    def write_temp(self, data: bytes) -> Path:
        """``data`` in a new local temp file, synced as ``sync`` does."""
        fd, name = tempfile.mkstemp(dir=self.spool_dir, suffix=".dcm")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                if self.sync_spool:
                    os.fsync(f.fileno())
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise
        return Path(name)

    def remove_spooled_before(self, cutoff: float) -> int:
        """Remove spool files last written before ``cutoff`` (epoch seconds): parts and temp files a
        crashed or killed request left (a request in flight writes its files as it goes); how many."""
        removed = 0
        for path in self.spool_dir.iterdir():
            try:
                if path.is_file() and path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed

    def sync(self, path: Path) -> int:
        """Make a spooled file ready to be put (fsync'd where it will be renamed); its size."""
        if not self.sync_spool:
            return path.stat().st_size
        with open(path, "rb+") as f:
            os.fsync(f.fileno())
            return os.fstat(f.fileno()).st_size

    @abstractmethod
    async def put_many(self, moves: list[tuple[Path, str]]) -> None:
        """Make each temp file durable in the store under its key; the temp files are consumed
        (moved or uploaded; the caller still removes what is left)."""

    @abstractmethod
    def read(self, key: str) -> AsyncIterator[bytes]:
        """The object's bytes in chunks; raises BlobNotFound."""

    @abstractmethod
    async def delete(self, keys: list[str]) -> None:
        """Remove objects; a key without an object is no error."""

    @abstractmethod
    async def exists(self, key: str) -> bool: ...

    async def check(self) -> None:
        """Raise OSError with a reason when the store cannot be used (checked at start)."""

    @abstractmethod
    def describe(self) -> str: ...


class FileBlobStore(BlobStore):
    """Objects as files under ``root``; the spool is ``root/.tmp`` (same file system: a put is a
    rename, made durable by syncing the file before and its directory after)."""

    def __init__(self, root: Path):
        self.root = root
        self.spool_dir = root / ".tmp"
        self.spool_dir.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.root / key

    async def put_many(self, moves: list[tuple[Path, str]]) -> None:
        await asyncio.to_thread(self._place, moves)

    def _place(self, moves: list[tuple[Path, str]]) -> None:
        directories = set()
        for temp, key in moves:
            target = self.path(key)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temp, target)
            directories.add(target.parent)
        for directory in directories:  # each directory synced once: the renames are durable
            fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    async def read(self, key: str) -> AsyncIterator[bytes]:
        try:
            f = await asyncio.to_thread(open, self.path(key), "rb")
        except FileNotFoundError:
            raise BlobNotFound(key) from None
        try:
            while chunk := await asyncio.to_thread(f.read, _READ_CHUNK):
                yield chunk
        finally:
            f.close()

    async def delete(self, keys: list[str]) -> None:
        def unlink() -> None:
            for key in keys:
                self.path(key).unlink(missing_ok=True)

        await asyncio.to_thread(unlink)

    async def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def describe(self) -> str:
        return f"file://{self.root.resolve()}"


class S3BlobStore(BlobStore):
    """Objects in an S3-compatible bucket (AWS S3, MinIO, Ceph RGW) through obstore, configured
    by the standard environment: AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    AWS_REGION (and AWS_SESSION_TOKEN). An object larger than MULTIPART_CHUNK goes up as a
    multipart upload straight from its spool file; a read streams."""

    sync_spool = False  # the spool file is uploaded, not renamed: its durability is the upload's

    def __init__(self, bucket: str, prefix: str, spool_dir: Path, environ: dict[str, str] | None = None):
        from obstore.store import S3Store

        environ = dict(os.environ if environ is None else environ)
        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.spool_dir = spool_dir
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        config = {name: environ[var] for name, var in _S3_ENVIRONMENT.items() if environ.get(var)}
        endpoint = config.get("endpoint", "")
        self._store = S3Store(bucket, prefix=self.prefix or None, config=config,  # type: ignore[arg-type]
                              client_options={"allow_http": endpoint.startswith("http://")})

    async def put_many(self, moves: list[tuple[Path, str]]) -> None:
        import obstore

        slots = asyncio.Semaphore(_PUTS_IN_FLIGHT)

        async def put(temp: Path, key: str) -> None:
            async with slots:
                await obstore.put_async(self._store, key, temp, chunk_size=MULTIPART_CHUNK)

        await asyncio.gather(*(put(temp, key) for temp, key in moves))

    async def read(self, key: str) -> AsyncIterator[bytes]:
        import obstore
        from obstore.exceptions import NotFoundError

        try:
            result = await obstore.get_async(self._store, key)
        except (NotFoundError, FileNotFoundError):
            raise BlobNotFound(key) from None
        async for chunk in result.stream(min_chunk_size=_READ_CHUNK):
            yield bytes(chunk)

    async def delete(self, keys: list[str]) -> None:
        import obstore

        if keys:
            await obstore.delete_async(self._store, keys)

    async def exists(self, key: str) -> bool:
        import obstore
        from obstore.exceptions import NotFoundError

        try:
            await obstore.head_async(self._store, key)
        except (NotFoundError, FileNotFoundError):
            return False
        return True

    async def check(self) -> None:
        import obstore

        try:
            await obstore.list(self._store, chunk_size=1).__anext__()
        except StopAsyncIteration:
            pass  # an empty bucket
        except Exception as exc:  # noqa: BLE001 - obstore raises its own kinds for every cause
            raise OSError(f"the blob store {self.describe()} cannot be listed: {exc}") from None

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


# obstore's S3 config key <- the standard AWS environment variable
_S3_ENVIRONMENT = {
    "endpoint": "AWS_ENDPOINT_URL",
    "access_key_id": "AWS_ACCESS_KEY_ID",
    "secret_access_key": "AWS_SECRET_ACCESS_KEY",
    "session_token": "AWS_SESSION_TOKEN",
    "region": "AWS_REGION",
}


def parse_blob_url(url: str) -> tuple[str, str, str]:
    """``file://PATH`` -> ("file", PATH, ""); ``s3://BUCKET/PREFIX`` -> ("s3", BUCKET, PREFIX).
    Raises ValueError for another form."""
    parts = urlsplit(url)
    if parts.scheme == "file" and (parts.path or parts.netloc):
        return "file", parts.netloc + parts.path, ""
    if parts.scheme == "s3" and parts.netloc:
        return "s3", parts.netloc, parts.path.strip("/")
    raise ValueError(f"blob store {url!r}: expected file://PATH or s3://BUCKET[/PREFIX]")


def open_blob_store(url: str | None, data_dir: Path) -> BlobStore:
    """The store ``--blob-store`` names, or (none) the directory ``<data_dir>/blobs``."""
    if not url:
        return FileBlobStore(Path(data_dir) / "blobs")
    scheme, location, prefix = parse_blob_url(url)
    if scheme == "file":
        return FileBlobStore(Path(location))
    return S3BlobStore(location, prefix, Path(data_dir) / "spool")
