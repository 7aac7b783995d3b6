"""The tier a customer's window of orders qualifies for now: the highest rung of the
policy's ladder whose spend, order-count or single-order condition it meets. Only the
qualifying rung lives here, read from the window's cached sums (true as of ``s.as_of``,
`folding.prune`); holding a tier through its downgrade grace is `stepping`'s, so the rule
and the hold can each be read alone.
"""

from __future__ import annotations

from streams.core.compiled import CompiledPolicy
from streams.core.state import (
    NO_TS,
    O_CANCELLED,
    O_PLACED,
    O_REFUNDED,
    O_TS,
    CustomerState,
)


def max_single_order(s: CustomerState) -> int:
    """Largest net amount of one tracked, live order in the window (cents)."""
    best = 0
    for e in s.orders.values():
        if e[O_TS] != NO_TS and not e[O_CANCELLED]:
            net = e[O_PLACED] - e[O_REFUNDED]
            if net > best:
                best = net
    return best


def qualifying_tier(s: CustomerState, c: CompiledPolicy) -> int:
    """Index of the highest rung whose conditions the window's orders meet now."""
    n = s.win_count
    return earned(c, s.win_cents, n, max_single_order(s) if n else 0)


def earned(c: CompiledPolicy, cents: int, n: int, best: int) -> int:
    """The highest rung met by a window of `n` orders and `cents` net spend whose largest
    single tracked order nets `best` cents: the ladder's rule, for now (`qualifying_tier`)
    and for the window as days leave it (`tier_progress`)."""
    rules = c.tier_rules
    for i in range(len(rules) - 1, 0, -1):
        spend, orders, single = rules[i]
        if spend is not None and cents >= spend:
            return i
        if orders is not None and n >= orders:
            return i
        if single is not None and n >= 1 and cents >= single and best >= single:
            return i
    return 0
