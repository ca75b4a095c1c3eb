"""Streamed multipart/related parsing: each part is spooled to a file as it arrives, so a
request of any size never sits in memory (only one read chunk plus a delimiter's tail)."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO


class MultipartError(ValueError):
    """The body is not a well-formed multipart message."""


@dataclass
class Part:
    headers: dict[str, str]
    path: Path
    complete: bool  # False: the body ended before this part's closing delimiter
    too_large: bool = False  # longer than the part limit: the spool file holds only its start

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()


class _Capped:
    """A spool file that stops taking data past ``limit`` bytes (``over``: some was dropped)."""

    def __init__(self, file: IO[bytes], limit: int | None):
        self.file, self.limit, self.size = file, limit, 0

    @property
    def over(self) -> bool:
        return self.limit is not None and self.size > self.limit

    def write(self, data: bytearray) -> None:
        self.size += len(data)
        if not self.over:
            self.file.write(data)

    def close(self) -> None:
        self.file.close()


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
    """Yield each part once its body is spooled; the caller owns (and removes) ``part.path``.
    A part longer than ``max_part_size`` is not spooled past it (``too_large``): the rest of it
    is read and dropped."""
    delimiter = b"\r\n--" + boundary.encode("latin-1")
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
        for line in bytes(buf[:h]).decode("latin-1").split("\r\n"):
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        del buf[:h + 4]
        f = _Capped(spool(), max_part_size)
        path = Path(f.file.name)
        complete = False
        try:
            while True:
                i = buf.find(delimiter)
                if i >= 0:
                    f.write(buf[:i])
                    del buf[:i + len(delimiter)]
                    complete = True
                    break
                keep = len(delimiter) - 1
                if len(buf) > keep:
                    f.write(buf[:len(buf) - keep])
                    del buf[:len(buf) - keep]
                if not await more():
                    f.write(buf)
                    buf.clear()
                    break
        finally:
            f.close()
        yield Part(headers, path, complete, f.over)
        if not complete:
            return


async def read_parts(body: bytes, boundary: str) -> list[tuple[str, bytes]]:
    """A small multipart/related body already in memory -> [(part content type, part body)]."""
    async def stream() -> AsyncIterator[bytes]:
        yield body

    out: list[tuple[str, bytes]] = []
    spool = lambda: tempfile.NamedTemporaryFile(delete=False)  # noqa: SIM115 (parts() closes it)
    async for part in parts(stream(), boundary, spool):
        try:
            if not part.complete:
                raise MultipartError("the body ended inside a part (no closing delimiter)")
            out.append((part.content_type, part.path.read_bytes()))
        finally:
            part.path.unlink(missing_ok=True)
    return out


def related(bodies: list[bytes], part_type: str) -> tuple[bytes, str]:
    """A multipart/related message of ``bodies``, each of ``part_type``: (body, Content-Type)."""
    boundary = uuid.uuid4().hex
    head = f"--{boundary}\r\nContent-Type: {part_type}\r\n\r\n".encode()
    body = b"".join(head + part + b"\r\n" for part in bodies) + f"--{boundary}--\r\n".encode()
    return body, f'multipart/related; type="{part_type}"; boundary={boundary}'
