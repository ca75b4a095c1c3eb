"""DICOM DA / TM / DT values <-> Python datetimes (for indexed columns and range matching)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_DT = re.compile(
    r"^(?P<y>\d{4})(?P<mo>\d{2})?(?P<d>\d{2})?(?P<h>\d{2})?(?P<mi>\d{2})?(?P<s>\d{2})?"
    r"(?:\.(?P<f>\d{1,6}))?(?P<tz>[+-]\d{4})?$"
)


def parse_dt(value: str, *, upper: bool = False) -> datetime:
    """Parse a DICOM DT (any precision, optional UTC offset) to a naive UTC datetime.

    Missing components take their lowest value, or their highest when ``upper`` is set (so
    that ``-2026`` as a range end means "up to the end of 2026"). A value without an offset
    is taken as UTC. Raises ValueError for anything that is not a DT.
    """
    m = _DT.match(value.strip())
    if not m:
        raise ValueError(f"not a DICOM DT value: {value!r}")
    g = m.groupdict()
    lo = upper is False
    year = int(g["y"])
    month = int(g["mo"]) if g["mo"] else (1 if lo else 12)
    if g["d"]:
        day = int(g["d"])
    elif lo:
        day = 1
    else:
        day = ((datetime(year + month // 12, month % 12 + 1, 1)) - timedelta(days=1)).day
    hour = int(g["h"]) if g["h"] else (0 if lo else 23)
    minute = int(g["mi"]) if g["mi"] else (0 if lo else 59)
    second = int(g["s"]) if g["s"] else (0 if lo else 59)
    if g["f"]:
        micro = int(g["f"].ljust(6, "0")) if lo or len(g["f"]) == 6 else int(g["f"].ljust(6, "9"))
    else:
        micro = 0 if lo else 999999
    result = datetime(year, month, day, hour, minute, min(second, 59), micro)
    if g["tz"]:
        sign = 1 if g["tz"][0] == "+" else -1
        offset = timedelta(hours=int(g["tz"][1:3]), minutes=int(g["tz"][3:5]))
        result = result - sign * offset
    return result


def parse_da(value: str, *, upper: bool = False) -> datetime:
    if not re.fullmatch(r"\d{8}", value.strip()):
        raise ValueError(f"not a DICOM DA value: {value!r}")
    return parse_dt(value.strip(), upper=upper)


def format_dt(moment: datetime | None = None) -> str:
    """Now (or ``moment``) as a DICOM DT with microseconds and a UTC offset."""
    moment = (moment or datetime.now(UTC)).astimezone(UTC)
    return moment.strftime("%Y%m%d%H%M%S.%f") + "+0000"
