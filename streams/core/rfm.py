"""RFM at a time ``t``: the recency, frequency and monetary scores, the segment they
name and the value class of the window's spend. A subject of its own because these are
the measures marketing sorts customers by and nothing else in the core reads them; they
come from the RFM window's cached sums, which `folding.prune` keeps true as of
``s.as_of`` (callers grade at ``t == s.as_of``).
"""

from __future__ import annotations

from typing import NamedTuple

from streams.core.compiled import DAY, CompiledPolicy
from streams.core.state import CustomerState


class Rfm(NamedTuple):
    recency_days: int | None
    frequency: int
    cents: int
    r: int
    f: int
    m: int


def rfm(s: CustomerState, t: int, c: CompiledPolicy) -> Rfm:
    """Scores are 1..n+1 (higher is better); 0 = no order (r) or none in the window (f, m)."""
    last = s.last_order
    if last is None:
        rd, r = None, 0
    else:
        rd = (t - last) // DAY
        edges = c.r_max_days
        r = 1
        for i, edge in enumerate(edges):
            if rd <= edge:
                r = len(edges) + 1 - i
                break
    n = s.win_count
    f = 0 if n <= 0 else 1 + sum(1 for x in c.f_min if n >= x)
    cents = max(0, s.win_cents)
    m = 0 if cents <= 0 else 1 + sum(1 for x in c.m_min_cents if cents >= x)
    return Rfm(rd, max(0, n), cents, r, f, m)


def segment(r: int, f: int, m: int, c: CompiledPolicy) -> str:
    for name, r0, r1, f0, f1, m0, m1 in c.segments:
        if r0 <= r <= r1 and f0 <= f <= f1 and m0 <= m <= m1:
            return name
    return c.segments[-1][0]  # unreachable: the policy check proves the rules cover all codes


def value_class(cents: int, c: CompiledPolicy) -> str:
    return "A" if cents >= c.value_a_cents else "B" if cents >= c.value_b_cents else "C"
