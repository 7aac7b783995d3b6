"""RFC 3339 <-> int epoch seconds, without reading any clock.

>>> parse_rfc3339("2024-03-01T11:15:00.250+01:00")
1709288100
>>> parse_rfc3339("2024-03-01T11:15:00+01:00")
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
from typing import Any, Final

DAY: Final = 86_400


def parse_rfc3339(text: Any) -> int:
    """Epoch seconds (floored) of an RFC 3339 date-time with an offset; naive times are refused.

    A naive time would be read in the machine's local zone: impure, so it is an error.

    The common shapes (``YYYY-MM-DDTHH:MM:SSZ`` and ``...SS+HH:MM``, no fraction, every
    field in range) are computed directly, the very integer ``datetime`` gives; anything
    else (fractions, other shapes, out-of-range fields, non-strings) goes through
    ``datetime.fromisoformat`` as before, with its results and its errors.
    """
    if type(text) is str:
        fast = _parse_whole_seconds(text)
        if fast is not None:
            return fast
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset")
    return math.floor(dt.timestamp())


def _parse_whole_seconds(text: str) -> int | None:
    """``YYYY-MM-DDTHH:MM:SS`` + ``Z`` or ``±HH:MM`` as epoch seconds; None for anything else.

    None whenever ``datetime.fromisoformat`` might see it differently: another length or
    shape, a character other than an ASCII digit where a digit belongs, a field out of
    range (year 0, month 13, 30 February, hour 24, second 60, offset 24:00 and over).
    """
    n = len(text)
    if n == 20:
        if text[19] != "Z":
            return None
        offset = 0
    elif n == 25:
        sign = text[19]
        if (sign != "+" and sign != "-") or text[22] != ":":
            return None
        oh = _two_digits(text, 20)
        om = _two_digits(text, 23)
        if oh < 0 or om < 0 or oh >= 24 or om >= 60:
            return None
        offset = oh * 3600 + om * 60
        if sign == "-":
            offset = -offset
    else:
        return None
    if text[4] != "-" or text[7] != "-" or text[10] != "T" or text[13] != ":" or text[16] != ":":
        return None
    hi = _two_digits(text, 0)
    lo = _two_digits(text, 2)
    month = _two_digits(text, 5)
    day = _two_digits(text, 8)
    hour = _two_digits(text, 11)
    minute = _two_digits(text, 14)
    second = _two_digits(text, 17)
    if hi < 0 or lo < 0 or month < 0 or day < 0 or hour < 0 or minute < 0 or second < 0:
        return None
    year = hi * 100 + lo
    if year < 1 or month < 1 or month > 12 or day < 1 or hour >= 24 or minute >= 60 or second >= 60:
        return None
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    if month == 2:
        if day > (29 if leap else 28):
            return None
    elif day > (30 if month == 4 or month == 6 or month == 9 or month == 11 else 31):
        return None
    # Days since 1970-01-01 (H. Hinnant's days_from_civil; years start in March).
    y = year - 1 if month <= 2 else year
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month + 9 if month <= 2 else month - 3) + 2) // 5 + day - 1
    days = era * 146_097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719_468
    return days * DAY + hour * 3600 + minute * 60 + second - offset


def _two_digits(text: str, i: int) -> int:
    """The number of the two ASCII digits at text[i:i + 2]; -1 if either is anything else."""
    a = ord(text[i]) - 48
    b = ord(text[i + 1]) - 48
    if a < 0 or a > 9 or b < 0 or b > 9:
        return -1
    return a * 10 + b


def format_rfc3339(ts: int) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` in UTC (gmtime of a given instant reads no clock).

    Years 1000-9999 are formatted from the civil date computed here (the very text
    strftime gives, without its call); other years go through strftime as before.
    """
    days, secs = divmod(ts, DAY)
    # Civil date from days since 1970-01-01 (H. Hinnant's days_from_civil, inverted).
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    year = yoe + era * 400 + (1 if month <= 2 else 0)
    if year < 1000 or year > 9999:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
    two = _TWO_DIGITS
    hour, rest = divmod(secs, 3600)
    minute, second = divmod(rest, 60)
    return f"{year}-{two[month]}-{two[day]}T{two[hour]}:{two[minute]}:{two[second]}Z"


_TWO_DIGITS: Final = tuple(f"{i:02d}" for i in range(100))
