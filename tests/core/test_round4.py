"""`churn.round4` is ``round(x, 4)`` bit for bit (the churn score depends on it)."""

from __future__ import annotations

import math
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core.churn import round4


def _same(x: float) -> bool:
    a, b = round4(x), round(x, 4)
    if math.isnan(b):
        return math.isnan(a)
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


def test_ties_and_integers_give_what_round_gives() -> None:
    """Every 4-place tie and every 4-place value in [0, 1], and their 64 neighbours."""
    for k in range(10_001):
        for base in ((k + 0.5) / 1e4, k / 1e4):
            x = base
            for _ in range(32):
                x = math.nextafter(x, 2.0)
                assert _same(x), x
            x = base
            for _ in range(32):
                assert _same(x), x
                x = math.nextafter(x, -1.0)


def test_edges() -> None:
    for x in (0.0, -0.0, 1.0, -1e-17, 5e-324, 1.0 + 1e-16, 2.5, -0.5, 1e300, math.inf, -math.inf):
        assert _same(x), x
    assert math.isnan(round4(math.nan))


def test_random_scores() -> None:
    rnd = random.Random(3)
    for _ in range(200_000):
        x = rnd.random()
        assert _same(x), x


@settings(max_examples=2_000, deadline=None)
@given(st.floats(allow_nan=False))
def test_any_float(x: float) -> None:
    assert _same(x)
