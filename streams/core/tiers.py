"""The tier a customer's window of orders qualifies for now: the highest rung of the
policy's ladder whose spend, order-count or single-order condition it meets. Only the
qualifying rung lives here, read from the window's cached sums (true as of ``s.as_of``,
`folding.prune`); holding a tier through its downgrade grace is `stepping`'s, so the rule
and the hold can each be read alone.
"""

from __future__ import annotations

from typing import Final

from streams.core.compiled import DAY, CompiledPolicy
from streams.core.state import (
    NO_TS,
    O_CANCELLED,
    O_PLACED,
    O_REFUNDED,
    O_TS,
    CustomerState,
)

# Below every day: no order day is at or before it.
NO_DAY: Final = -(1 << 62)


def best_single_after(s: CustomerState, day: int) -> int:
    """The largest net amount (0 when none) of a tracked live order placed after `day`
    (cents): with `NO_DAY`, of any tracked live order in the window; later, of those still
    in it once the days up to `day` have left (`tier_progress`)."""
    best = 0
    for e in s.orders.values():
        ts = e[O_TS]
        if ts != NO_TS and not e[O_CANCELLED] and ts // DAY > day:
            net = e[O_PLACED] - e[O_REFUNDED]
            if net > best:
                best = net
    return best


def qualifying_tier(s: CustomerState, c: CompiledPolicy) -> int:
    """Index of the highest rung whose conditions the window's orders meet now."""
    return earned(c, s.win_cents, s.win_count, s, NO_DAY)


def earned(c: CompiledPolicy, cents: int, n: int, s: CustomerState, after: int) -> int:
    """The highest rung met by a window of `n` orders and `cents` net spend, whose largest
    single order is the largest of `s`'s tracked live orders placed after day `after`:
    the ladder's rule, for now (`qualifying_tier`) and for the window as days leave it
    (`tier_progress`). The orders are walked only when a single-order condition is
    the one left to decide."""
    rules = c.tier_rules
    for i in range(len(rules) - 1, 0, -1):
        spend, orders, single = rules[i]
        if spend is not None and cents >= spend:
            return i
        if orders is not None and n >= orders:
            return i
        if (
            single is not None
            and n >= 1
            and cents >= single
            and best_single_after(s, after) >= single
        ):
            return i
    return 0
