"""The tier ladder: upgrades at once, time lapses after a grace, refunds reverse at once."""

from __future__ import annotations

import pytest

from streams.core.engine import advance, apply, snapshot
from streams.core.policy import Policy
from tests.core.builders import DAY, T0, Event, at, order, run


def _tiers(out: list[Event]) -> list[tuple[str, str, str, str]]:
    return [
        (o["previous_tier"], o["tier"], o["direction"], o["cause"]["kind"])
        for o in out
        if o["type"] == "tier_changed"
    ]


@pytest.mark.parametrize(
    ("amounts", "tier"),
    [
        ([], "potential"),
        ([2999.99], "potential"),
        ([3000], "regular"),  # one order >= 3,000
        ([10, 10], "regular"),  # or two orders in the window
        ([49_999.99], "regular"),
        ([50_000], "silver"),
        ([30_000, 20_000], "silver"),
        ([79_999.99], "silver"),
        ([80_000], "gold"),
    ],
)
def test_tier_thresholds(policy: Policy, amounts: list[float], tier: str) -> None:
    s, _ = run([order(f"e{i}", T0 + i, a) for i, a in enumerate(amounts)], policy)
    assert snapshot(s, policy)["tier"] == tier


def test_upgrades_apply_at_once_with_the_event_as_cause(policy: Policy) -> None:
    _s, out = run([order("e1", T0, 3000), order("e2", T0 + DAY, 47_000)], policy)
    tiers = [o for o in out if o["type"] == "tier_changed"]
    assert _tiers(out) == [
        ("potential", "regular", "up", "event"),
        ("regular", "silver", "up", "event"),
    ]
    assert tiers[1]["cause"] == {"kind": "event", "event_type": "order_placed", "event_id": "e2"}
    assert tiers[1]["occurred_at"] == at(T0 + DAY)
    assert tiers[1]["snapshot"]["tier"] == "silver"
    assert tiers[1]["snapshot"]["rfm"]["monetary"] == 50_000.0


def test_lapse_downgrades_only_after_the_grace(policy: Policy) -> None:
    s, _ = run([order("e1", T0 + 3600, 80_000)], policy)
    expiry = T0 + 365 * DAY  # the order's day leaves the window at this midnight
    assert advance(s, expiry + 29 * DAY, policy) != []  # lifecycle moved on; the tier held
    assert snapshot(s, policy)["tier"] == "gold"
    assert snapshot(s, policy)["rfm"]["monetary"] == 0.0
    out = advance(s, expiry + 31 * DAY, policy)
    assert _tiers(out) == [("gold", "potential", "down", "inactivity")]
    (down,) = [o for o in out if o["type"] == "tier_changed"]
    assert down["occurred_at"] == at(expiry + 30 * DAY)  # the due time, not the sweep's time
    assert down["cause"] == {"kind": "inactivity"}


def test_an_order_during_the_grace_keeps_the_tier(policy: Policy) -> None:
    s, _ = run([order("e1", T0, 60_000)], policy)  # silver
    expiry = T0 + 365 * DAY
    advance(s, expiry + 10 * DAY, policy)
    r = apply(s, order("e2", expiry + 11 * DAY, 50_000), policy)
    assert _tiers(r.outputs) == []
    assert _tiers(advance(s, expiry + 100 * DAY, policy)) == []
    assert snapshot(s, policy)["tier"] == "silver"


def test_partial_lapse_falls_to_the_tier_still_earned(policy: Policy) -> None:
    s, _ = run([order("e1", T0, 40_000), order("e2", T0 + 200 * DAY, 45_000)], policy)
    assert snapshot(s, policy)["tier"] == "gold"
    out = advance(s, T0 + 400 * DAY, policy)  # the first order left at day 365; grace to 395
    assert _tiers(out) == [("gold", "regular", "down", "inactivity")]


def test_refund_reverses_an_upgrade_at_once(policy: Policy) -> None:
    _s, out = run(
        [
            order("e1", T0, 50_000, oid="A"),
            order("e2", T0 + DAY, 1_000, oid="A", kind="order_refunded"),
        ],
        policy,
    )
    assert _tiers(out) == [
        ("potential", "silver", "up", "event"),
        ("silver", "regular", "down", "event"),
    ]
    down = [o for o in out if o["type"] == "tier_changed"][1]
    assert down["cause"]["event_type"] == "order_refunded"


def test_cancellation_reverses_at_once(policy: Policy) -> None:
    _s, out = run(
        [
            order("e1", T0, 3000, oid="A"),
            order("e2", T0 + 60, 3000, oid="A", kind="order_cancelled"),
        ],
        policy,
    )
    assert _tiers(out) == [
        ("potential", "regular", "up", "event"),
        ("regular", "potential", "down", "event"),
    ]


def test_refund_during_grace_ends_it_at_once(policy: Policy) -> None:
    s, _ = run(
        [order("e1", T0, 40_000, oid="A"), order("e2", T0 + 300 * DAY, 55_000, oid="B")], policy
    )
    advance(s, T0 + 370 * DAY, policy)  # A left the window: gold held under grace (silver earned)
    assert snapshot(s, policy)["tier"] == "gold"
    r = apply(s, order("e3", T0 + 371 * DAY, 10_000, oid="B", kind="order_refunded"), policy)
    assert _tiers(r.outputs) == [("gold", "regular", "down", "event")]


def test_refund_after_a_lapse_does_not_cut_the_grace(policy: Policy) -> None:
    # The tier stood on spend that left with time; a refund of another small order takes
    # nothing the tier stood on, so the grace runs its course.
    s, _ = run(
        [order("e1", T0, 60_000, oid="A"), order("e2", T0 + 300 * DAY, 100, oid="B")], policy
    )
    advance(s, T0 + 370 * DAY, policy)
    r = apply(s, order("e3", T0 + 371 * DAY, 100, oid="B", kind="order_refunded"), policy)
    assert _tiers(r.outputs) == []
    assert _tiers(advance(s, T0 + 396 * DAY, policy)) == [
        ("silver", "potential", "down", "inactivity")
    ]


def test_refund_that_keeps_the_tier_changes_nothing(policy: Policy) -> None:
    _, out = run(
        [
            order("e1", T0, 90_000, oid="A"),
            order("e2", T0 + 1, 5_000, oid="A", kind="order_refunded"),
        ],
        policy,
    )
    assert _tiers(out) == [("potential", "gold", "up", "event")]
