"""Progress on the tier ladder: what the next tier up still needs, and, for a tier held
above the floor, when it falls if nothing changes and what would keep it.

"If nothing changes" means no new event. Then the window's sums move only when an order
day leaves the RFM window, at the midnight `due.order_day_due` names, so a walk over the
window's days, oldest first, meets every instant at which the qualifying tier can move.
The walk re-enacts `stepping.settle_tier` at each of them: a grace starts when the held
tier is no longer earned, ends when it is earned again, and the tier falls once the grace
has run `downgrade_grace_days`. Its due time (`due.holds_due`) is the other instant.

`needs` are the alternatives that reach a rung (a rung is reached when ANY of its
conditions holds): net spend to add to the window, orders to add, or the amount one order
must reach; None for a condition the rung does not have. They hold for orders placed
before `before`: for the next tier, the instant an order day leaves and the spend or the
order count still needed grows; for the held tier, the downgrade itself.

Pure: the state is read, never changed. The snapshot's ``progress`` (docs/grading.md).

>>> from streams.core.policy import load_policy
>>> from streams.core.state import new_state
>>> c = load_policy().compiled
>>> s = new_state("c-1")
>>> s.days[19_800] = [1, 4_000_000]  # one order of 40,000 USD on 2024-03-18
>>> s.win_count, s.win_cents, s.tier, s.as_of = 1, 4_000_000, "regular", 19_800 * DAY
>>> s.orders["o1"] = [19_800 * DAY, 4_000_000, 0, 0, 19_800, 0]
>>> p = progress(s, c)
>>> p["next"]["tier"], p["next"]["needs"]["spend"], p["next"]["needs"]["before"]
('silver', 10000.0, '2025-03-18T00:00:00Z')
>>> p["held"]["downgrade_at"], p["held"]["downgrade_to"], p["held"]["needs"]["orders"]
('2025-04-17T00:00:00Z', 'potential', 2)
"""

from __future__ import annotations

from typing import Any

from streams.core.compiled import DAY, CompiledPolicy
from streams.core.state import CustomerState
from streams.core.tiers import NO_DAY, earned
from streams.core.timefmt import format_rfc3339

__all__ = ["Downgrade", "downgrade", "progress", "rung_needs", "warning_at"]


class Downgrade:
    """The held tier's fall if nothing changes: when (`at`), to which rung (`to`), and the
    window's net spend and order count at that instant."""

    __slots__ = ("at", "cents", "n", "to")

    def __init__(self, at: int, to: int, cents: int, n: int) -> None:
        self.at = at
        self.to = to
        self.cents = cents
        self.n = n


def by_day(days: dict[int, list[int]]) -> dict[int, list[int]]:
    """Day buckets in ascending day order: `days` itself when they are (orders mostly come
    in time order), else a sorted copy. A compiled check of the keys, not a sort of the
    items: the walks below run for every snapshot.

    >>> list(by_day({19_801: [1, 5], 19_800: [1, 7]}))
    [19800, 19801]
    """
    last = NO_DAY
    for d in days:
        if d < last:
            return dict(sorted(days.items()))
        last = d
    return days


def downgrade(
    s: CustomerState, held: int, c: CompiledPolicy, days: dict[int, list[int]] | None = None
) -> Downgrade:
    """When rung `held` (> 0) falls if no event comes after ``s.as_of``: the walk of the
    module's docstring. Every day leaves at last, so the rung always falls. `days`: the
    window's day buckets in day order (`by_day`), if the caller has them."""
    if days is None:
        days = by_day(s.days)
    cents, n = s.win_cents, s.win_count
    below = s.below_since
    grace = c.grace_s
    left = NO_DAY  # the last day to have left the window
    for day, bucket in days.items():
        leaves = (day + c.window_days) * DAY
        if below is not None and below + grace < leaves:
            break
        n -= bucket[0]
        cents -= bucket[1]
        left = day
        q = earned(c, cents, n, s, left)
        if q >= held:
            below = None
            continue
        if below is None:
            below = leaves
        if leaves - below >= grace:
            return Downgrade(leaves, q, cents, n)
    # A grace runs out before the next day leaves; or the window is empty, which earns
    # the floor: a grace runs already.
    at = (s.as_of if below is None else below) + grace
    return Downgrade(at, earned(c, cents, n, s, left), cents, n)


def warning_at(below_since: int, c: CompiledPolicy) -> int | None:
    """When the warning of a grace that started at `below_since` is due: `warning_days`
    before its end, or at its start when the grace is shorter; None when there are no
    warnings (`warning_days` 0) or no grace to warn in (`downgrade_grace_days` 0)."""
    if c.warning_s <= 0 or c.grace_s <= 0:
        return None
    at = below_since + c.grace_s - c.warning_s
    return at if at > below_since else below_since


def rung_needs(
    c: CompiledPolicy, rung: int, cents: int, n: int, before: int | None
) -> dict[str, Any]:
    """What a window of `n` orders and `cents` net spend lacks for `rung`'s conditions."""
    spend, orders, single = c.tier_rules[rung]
    return {
        "spend": None if spend is None else round(max(0, spend - cents) / 100, 2),
        "orders": None if orders is None else max(0, orders - n),
        "single_order": None if single is None else round(single / 100, 2),
        "before": None if before is None else format_rfc3339(before),
    }


def _grows_at(days: dict[int, list[int]], rung: int, c: CompiledPolicy) -> int | None:
    """The first instant an order day leaves and `rung`'s spend or order need grows."""
    spend, orders, _ = c.tier_rules[rung]
    for day, bucket in days.items():
        if (spend is not None and bucket[1] > 0) or (orders is not None and bucket[0] > 0):
            return (day + c.window_days) * DAY
    return None


def held_block(
    s: CustomerState, held: int, c: CompiledPolicy, days: dict[int, list[int]] | None = None
) -> dict[str, Any]:
    """The held rung's fall if nothing changes, and what keeps it past that instant
    (orders placed before it stay in the window then: the window is a day at least)."""
    fall = downgrade(s, held, c, days)
    return {
        "tier": c.tier_names[held],
        "downgrade_at": format_rfc3339(fall.at),
        "downgrade_to": c.tier_names[fall.to],
        "needs": rung_needs(c, held, fall.cents, fall.n, fall.at),
    }


def progress(s: CustomerState, c: CompiledPolicy) -> dict[str, Any]:
    """The snapshot's ``progress``: the same at any instant from ``s.as_of`` to its due."""
    held = c.tier_rank.get(s.tier or c.tier_names[0], 0)
    days = by_day(s.days)
    up: dict[str, Any] | None = None
    if held + 1 < len(c.tier_names):
        grows = _grows_at(days, held + 1, c)
        up = {
            "tier": c.tier_names[held + 1],
            "needs": rung_needs(c, held + 1, s.win_cents, s.win_count, grows),
        }
    return {"next": up, "held": held_block(s, held, c, days) if held > 0 else None}
