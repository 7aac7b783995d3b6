"""parse_rfc3339 gives what datetime gives (errors too); format_rfc3339 what strftime gives."""

from __future__ import annotations

import math
import random
import time
from datetime import datetime
from typing import Any

import pytest

from streams.core.timefmt import format_rfc3339, parse_rfc3339


def _reference(text: Any) -> int | str:
    """The parse before the fast path: datetime.fromisoformat, floored timestamp."""
    try:
        dt = datetime.fromisoformat(text)
        if dt.tzinfo is None:
            raise ValueError(f"{text!r} has no UTC offset")
        return math.floor(dt.timestamp())
    except Exception as err:  # the very error is compared
        return repr(err)


def _ours(text: Any) -> int | str:
    try:
        return parse_rfc3339(text)
    except Exception as err:
        return repr(err)


EDGES = [
    "2024-02-29T00:00:00Z",
    "2023-02-29T00:00:00Z",
    "2100-02-29T00:00:00Z",
    "2000-02-29T23:59:59+23:59",
    "2024-04-31T00:00:00Z",
    "2024-12-31T23:59:59-00:00",
    "0001-01-01T00:00:00+01:00",
    "0001-01-01T00:00:00-23:59",
    "0000-01-01T00:00:00Z",
    "9999-12-31T23:59:59-01:00",
    "9999-12-31T23:59:59.999999Z",
    "1969-12-31T23:59:59.5Z",
    "1970-01-01T00:00:00Z",
    "2024-01-01T24:00:00Z",
    "2024-01-01T23:60:00Z",
    "2024-06-30T23:59:60Z",
    "2024-01-01T10:00:00+24:00",
    "2024-01-01T10:00:00+01:60",
    "2024-01-01T10:00:00",
    "2024-01-01t10:00:00z",
    "2024-01-01T10:00:00z",
    "2024-01-01 10:00:00Z",
    "2024-01-0\uff11T10:00:00Z",
    "\u0661\u0660\u0662\u0664-01-01T10:00:00Z",
    "2024-01-01T10:00:00+0100",
    "2024-01-01T10:00:00+01",
    "+024-01-01T10:00:00Z",
    "2024-+1-01T10:00:00Z",
    "2024-01-01T10:00:00.123456789+05:30",
    "",
]


@pytest.mark.parametrize("text", EDGES)
def test_edges(text: str) -> None:
    assert _ours(text) == _reference(text)


@pytest.mark.parametrize("value", [None, 5, 5.0, b"2024-01-01T00:00:00Z", ["x"]])
def test_not_a_string(value: Any) -> None:
    assert _ours(value) == _reference(value)


def _random_text(rnd: random.Random) -> str:
    year = rnd.choice([rnd.randint(0, 9999), 1, 1600, 1900, 1970, 2000, 2024, 2100, 9999])
    text = (
        f"{year:04d}-{rnd.randint(0, 13):02d}-{rnd.randint(0, 32):02d}"
        f"T{rnd.randint(0, 25):02d}:{rnd.randint(0, 61):02d}:{rnd.randint(0, 61):02d}"
    )
    r = rnd.random()
    if r < 0.3:
        text += "Z"
    elif r < 0.8:
        text += f"{rnd.choice('+-')}{rnd.randint(0, 25):02d}:{rnd.choice([0, 30, 45, 59, 60]):02d}"
    elif r < 0.9:
        text += "." + "9" * rnd.randint(1, 10) + "Z"
    if rnd.random() < 0.1:
        i = rnd.randrange(len(text))
        text = text[:i] + rnd.choice("0123456789-:TZ+ .tz\u0661\uff11") + text[i + 1 :]
    return text


def test_random_texts_match_datetime() -> None:
    rnd = random.Random(20261125)
    for _ in range(50_000):
        text = _random_text(rnd)
        assert _ours(text) == _reference(text), text


def _strftime(ts: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


@pytest.mark.parametrize(
    "ts",
    [
        0,
        -1,
        -86_400,
        951_782_400,  # 2000-02-29
        4_107_542_400,  # 2100-03-01
        -30_610_224_000,  # 1000-01-01
        -30_610_224_001,  # 999-12-31T23:59:59
        253_402_300_799,  # 9999-12-31T23:59:59
        253_402_300_800,  # 10000-01-01
        -62_135_596_800,  # 0001-01-01
    ],
)
def test_format_edges(ts: int) -> None:
    assert format_rfc3339(ts) == _strftime(ts)


def test_format_random_instants_match_strftime() -> None:
    rnd = random.Random(1125)
    for _ in range(50_000):
        ts = rnd.randint(-62_135_596_800, 253_402_300_799)
        assert format_rfc3339(ts) == _strftime(ts), ts
    for _ in range(20_000):  # dense around today, every second of a day's edges
        ts = rnd.randint(1_600_000_000, 1_800_000_000)
        assert format_rfc3339(ts) == _strftime(ts), ts
