"""JSON text of DICOM JSON datasets, encoded and decoded by orjson (a maintained C-speed JSON library
made for this: on retrieve and search, decoding the stored JSONB and encoding the response were the
largest pure-Python costs per request).

The text means the same as the standard library's compact ``json.dumps(..., ensure_ascii=False)``;
what orjson does not take (an integer beyond 64 bits, which no validated DICOM value holds) falls
back to the standard library, so nothing that encoded before fails now.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON of ``value`` (keys in insertion order)."""
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError: e.g. an int beyond 64 bits
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def dumps_text(value: Any) -> str:
    return dumps(value).decode()


def loads(text: str | bytes) -> Any:
    """Decode JSON text (the database's JSONB; a number beyond 64-bit integers, which no validated
    DICOM value holds, becomes the nearest float)."""
    return orjson.loads(text)
