"""Streamed multipart/related parsing. A part is kept in memory up to ``MEMORY_PART`` bytes (the
common small instance: no temp file, no read back); a larger one is spooled to a file as it
arrives, so that a part of any size never sits in memory (only ``MEMORY_PART``, one read chunk and
a delimiter's tail). Delimiters are found with ``bytearray.find`` over what has arrived: no
per-line work in a part's body."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

MEMORY_PART = 1 << 20  # a part's body up to this size stays in memory; a larger one goes to a spool file


class MultipartError(ValueError):
    """The body is not a well-formed multipart message."""


@dataclass
class Part:
    headers: dict[str, str]
    data: bytes | None  # the body, when it stayed in memory
    path: Path | None  # else the spool file holding it (the caller removes it: ``discard``)
    complete: bool  # False: the body ended before this part's closing delimiter
    too_large: bool = False  # longer than the part limit: only its start was kept
    size: int = 0  # the body's length

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    @property
    def body(self) -> bytes | Path:
        """The body in memory, or the path of its spool file."""
        if self.data is not None:
            return self.data
        assert self.path is not None
        return self.path

    def read(self) -> bytes:
        return self.data if self.data is not None else self.path.read_bytes()  # type: ignore[union-attr]

    def discard(self) -> None:
        """Remove the spool file, if any (a store may have moved it already)."""
        if self.path is not None:
            self.path.unlink(missing_ok=True)


class _Sink:
    """Where a part's body goes: memory up to ``MEMORY_PART`` bytes, then a spool file; past
    ``limit`` bytes nothing more is kept (``over``)."""

    def __init__(self, spool: Callable[[], IO[bytes]], limit: int | None):
        self.spool, self.limit, self.size = spool, limit, 0
        self.chunks: list[bytes] = []
        self.file: IO[bytes] | None = None

    @property
    def over(self) -> bool:
        return self.limit is not None and self.size > self.limit

    def write(self, data: bytes | memoryview) -> None:
        self.size += len(data)
        if self.over:
            return
        if self.file is None and self.size <= MEMORY_PART:
            self.chunks.append(bytes(data))
            return
        if self.file is None:
            self.file = self.spool()
            self.file.writelines(self.chunks)
            self.chunks = []
        self.file.write(data)

    def close(self) -> tuple[bytes | None, Path | None]:
        """(the body, None) or (None, its spool file)."""
        if self.file is None:
            return self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks), None
        self.file.close()
        return None, Path(self.file.name)

    def abandon(self) -> None:
        if self.file is not None:
            self.file.close()
            Path(self.file.name).unlink(missing_ok=True)


def content_type_params(value: str) -> tuple[str, dict[str, str]]:
    """``'multipart/related; type="application/dicom"; boundary=x'`` -> (type, params)."""
    parts = value.split(";")
    params: dict[str, str] = {}
    for p in parts[1:]:
        if "=" in p:
            k, v = p.split("=", 1)
            params[k.strip().lower()] = v.strip().strip('"')
    return parts[0].strip().lower(), params


async def parts(stream: AsyncIterator[bytes], boundary: str, spool: Callable[[], IO[bytes]],
                max_part_size: int | None = None) -> AsyncIterator[Part]:
    """Yield each part once its body has arrived (in memory, or spooled by ``spool()``: the caller
    owns the file, ``Part.discard``). A part longer than ``max_part_size`` is not kept past it
    (``too_large``): the rest of it is read and dropped."""
    delimiter = b"\r\n--" + boundary.encode("latin-1")
    keep = len(delimiter) - 1  # a tail that may be the start of a delimiter split between chunks
    buf = bytearray(b"\r\n")  # the first delimiter has no CRLF before it
    chunks = stream.__aiter__()
    eof = False

    async def more() -> bool:
        nonlocal eof
        if eof:
            return False
        try:
            buf.extend(await chunks.__anext__())
        except StopAsyncIteration:
            eof = True
            return False
        return True

    # preamble: up to the first delimiter
    while (i := buf.find(delimiter)) < 0:
        del buf[:max(0, len(buf) - len(delimiter))]
        if not await more():
            raise MultipartError(f"no part delimiter --{boundary} in the body")
    del buf[:i + len(delimiter)]
    while True:
        while len(buf) < 2 and await more():
            pass
        if buf[:2] == b"--":
            return  # close delimiter
        while (h := buf.find(b"\r\n\r\n")) < 0:
            if len(buf) > 65536 or not await more():
                raise MultipartError("a part's headers do not end (no empty line)")
        headers: dict[str, str] = {}
        for line in buf[:h].decode("latin-1").split("\r\n"):
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        start = h + 4  # the body's first byte in buf
        sink = _Sink(spool, max_part_size)
        complete = False
        try:
            while True:
                i = buf.find(delimiter, start)
                if i >= 0:
                    with memoryview(buf) as view:
                        sink.write(view[start:i])
                    del buf[:i + len(delimiter)]
                    complete = True
                    break
                if len(buf) - start > keep:
                    with memoryview(buf) as view:
                        sink.write(view[start:len(buf) - keep])
                    del buf[:len(buf) - keep]
                    start = 0
                if not await more():
                    with memoryview(buf) as view:
                        sink.write(view[start:])
                    buf.clear()
                    break
        except BaseException:
            sink.abandon()
            raise
        data, path = sink.close()
        yield Part(headers, data, path, complete, sink.over, sink.size)
        if not complete:
            return


async def read_parts(body: bytes, boundary: str) -> list[tuple[str, bytes]]:
    """A small multipart/related body already in memory -> [(part content type, part body)]."""
    async def stream() -> AsyncIterator[bytes]:
        yield body

    out: list[tuple[str, bytes]] = []
    spool = lambda: tempfile.NamedTemporaryFile(delete=False)  # noqa: SIM115 (closed by parts(), removed below)
    async for part in parts(stream(), boundary, spool):
        try:
            if not part.complete:
                raise MultipartError("the body ended inside a part (no closing delimiter)")
            out.append((part.content_type, part.read()))
        finally:
            part.discard()
    return out


def related(bodies: list[bytes], part_type: str) -> tuple[bytes, str]:
    """A multipart/related message of ``bodies``, each of ``part_type``: (body, Content-Type)."""
    boundary = uuid.uuid4().hex
    head = f"--{boundary}\r\nContent-Type: {part_type}\r\n\r\n".encode()
    body = b"".join(head + part + b"\r\n" for part in bodies) + f"--{boundary}--\r\n".encode()
    return body, f'multipart/related; type="{part_type}"; boundary={boundary}'
