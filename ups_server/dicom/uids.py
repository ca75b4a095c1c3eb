"""UIDs: dcm4chee-compatible name-based UIDs and random 2.25 UIDs."""

from __future__ import annotations

import hashlib
import re
import uuid

UPS_PUSH = "1.2.840.10008.5.1.4.34.6.1"
UPS_WATCH = "1.2.840.10008.5.1.4.34.6.2"
UPS_PULL = "1.2.840.10008.5.1.4.34.6.3"
UPS_EVENT = "1.2.840.10008.5.1.4.34.6.4"
UPS_QUERY = "1.2.840.10008.5.1.4.34.6.5"
GLOBAL_SUBSCRIPTION = "1.2.840.10008.5.1.4.34.5"
FILTERED_GLOBAL_SUBSCRIPTION = "1.2.840.10008.5.1.4.34.5.1"

_UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")


def name_based_uid(name: str, root: str = "2.25") -> str:
    """The UID dcm4che's ``UIDUtils.createNameBasedUID`` gives for ``name``.

    MD5 of the UTF-8 name, version nibble 3, RFC 4122 variant, read as one unsigned
    128-bit integer written in decimal after the root (no namespace is prepended).
    """
    digest = bytearray(hashlib.md5(name.encode("utf-8")).digest())
    digest[6] = (digest[6] & 0x0F) | 0x30
    digest[8] = (digest[8] & 0x3F) | 0x80
    return f"{root}.{int.from_bytes(digest, 'big')}"


def new_uid() -> str:
    """A random UID under the 2.25 (UUID) arc."""
    return f"2.25.{uuid.uuid4().int}"


def is_valid_uid(value: str) -> bool:
    """True when ``value`` is a syntactically valid DICOM UID (PS3.5 9.1)."""
    return 0 < len(value) <= 64 and bool(_UID_RE.match(value))
