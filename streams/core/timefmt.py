"""RFC 3339 <-> int epoch seconds, without reading any clock.

>>> parse_rfc3339("2024-03-01T11:15:00.250+01:00")
1709288100
>>> format_rfc3339(1709288100)
'2024-03-01T10:15:00Z'
>>> parse_rfc3339("2024-03-01T10:15:00")
Traceback (most recent call last):
...
ValueError: '2024-03-01T10:15:00' has no UTC offset
"""

from __future__ import annotations

import math
import time
from datetime import datetime

DAY = 86_400


def parse_rfc3339(text: str) -> int:
    """Epoch seconds (floored) of an RFC 3339 date-time with an offset; naive times are refused.

    A naive time would be read in the machine's local zone: impure, so it is an error.
    """
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset")
    return math.floor(dt.timestamp())


def format_rfc3339(ts: int) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` in UTC (gmtime of a given instant reads no clock)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
