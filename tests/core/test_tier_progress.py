"""Progress on the ladder and downgrade warnings: what the next tier needs, when the held
one falls, and the warning `warning_days` before it, once per grace."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from streams.core.engine import advance, apply, new_state, snapshot
from streams.core.grading import grade
from streams.core.policy import Policy, policy_from_dict
from tests.core.builders import DAY, T0, Event, at, order, run
from tests.core.models import default_doc

# An order placed at T0 (a midnight) leaves the 365-day window at this midnight.
LEAVES = T0 + 365 * DAY
GRACE = 30 * DAY
WARN = 14 * DAY


def needs(
    spend: float | None = None,
    orders: int | None = None,
    single_order: float | None = None,
    before: int | None = None,
) -> dict[str, Any]:
    return {
        "spend": spend,
        "orders": orders,
        "single_order": single_order,
        "before": None if before is None else at(before),
    }


def held(tier: str, down_at: int, to: str, **need: Any) -> dict[str, Any]:
    return {
        "tier": tier,
        "downgrade_at": at(down_at),
        "downgrade_to": to,
        "needs": needs(**need, before=down_at),
    }


REGULAR_HELD = held("regular", LEAVES + GRACE, "potential", orders=2, single_order=3000.0)


@pytest.mark.parametrize(
    ("amount", "tier", "up", "hold"),
    [
        (2999.99, "potential", ("regular", needs(None, 1, 3000.0, LEAVES)), None),
        (3000, "regular", ("silver", needs(47_000.0, before=LEAVES)), REGULAR_HELD),
        (3000.01, "regular", ("silver", needs(46_999.99, before=LEAVES)), REGULAR_HELD),
        (49_999.99, "regular", ("silver", needs(0.01, before=LEAVES)), REGULAR_HELD),
        (
            50_000,
            "silver",
            ("gold", needs(30_000.0, before=LEAVES)),
            held("silver", LEAVES + GRACE, "potential", spend=50_000.0),
        ),
        (
            50_000.01,
            "silver",
            ("gold", needs(29_999.99, before=LEAVES)),
            held("silver", LEAVES + GRACE, "potential", spend=50_000.0),
        ),
        (
            79_999.99,
            "silver",
            ("gold", needs(0.01, before=LEAVES)),
            held("silver", LEAVES + GRACE, "potential", spend=50_000.0),
        ),
        (80_000, "gold", None, held("gold", LEAVES + GRACE, "potential", spend=80_000.0)),
        (80_000.01, "gold", None, held("gold", LEAVES + GRACE, "potential", spend=80_000.0)),
    ],
)
def test_progress_just_below_at_and_above_each_threshold(
    policy: Policy, amount: float, tier: str, up: tuple[str, Any] | None, hold: Any
) -> None:
    s, _ = run([order("e1", T0, amount)], policy)
    g = snapshot(s, policy)
    assert g["tier"] == tier
    want_next = None if up is None else {"tier": up[0], "needs": up[1]}
    assert g["progress"] == {"next": want_next, "held": hold}


def test_a_prospect_needs_two_orders_or_one_large_one_with_no_deadline(policy: Policy) -> None:
    g = snapshot(new_state("cust-1"), policy)
    assert g["progress"] == {
        "next": {"tier": "regular", "needs": needs(None, 2, 3000.0, None)},
        "held": None,
    }


def test_the_next_tier_needs_grow_when_the_oldest_order_day_leaves(policy: Policy) -> None:
    s, _ = run([order("e1", T0, 30_000), order("e2", T0 + 100 * DAY, 15_000)], policy)
    up = snapshot(s, policy)["progress"]["next"]
    assert up == {"tier": "silver", "needs": needs(5_000.0, before=LEAVES)}
    # Just before that midnight the figure still holds; at it, 30,000 more are needed.
    assert grade(s, LEAVES - 1, policy)["progress"]["next"] == up
    later = grade(s, LEAVES, policy)["progress"]["next"]
    assert later == {"tier": "silver", "needs": needs(35_000.0, before=LEAVES + 100 * DAY)}


def test_a_held_tier_falls_when_the_last_qualifying_day_has_left_plus_the_grace(
    policy: Policy,
) -> None:
    """Silver on 58k: the first day leaving is not enough to lose it (58k - 5k), the
    second is; the grace runs from there, and the tier falls to what the third order
    still earns (one order of 3,000: regular)."""
    s, _ = run(
        [
            order("e1", T0, 5_000),
            order("e2", T0 + 10 * DAY, 50_000),
            order("e3", T0 + 60 * DAY, 3_000),
        ],
        policy,
    )
    hold = snapshot(s, policy)["progress"]["held"]
    second_leaves = LEAVES + 10 * DAY
    assert hold == held("silver", second_leaves + GRACE, "regular", spend=47_000.0)
    # What the snapshot foretold is what time does.
    out = advance(s, second_leaves + 2 * GRACE, policy)
    [down] = [o for o in out if o["type"] == "tier_changed"]
    assert (down["occurred_at"], down["tier"]) == (hold["downgrade_at"], hold["downgrade_to"])


def test_during_the_grace_held_says_when_it_ends(policy: Policy) -> None:
    s, _ = run([order("e1", T0, 60_000)], policy, until=LEAVES + 5 * DAY)
    assert s.below_since == LEAVES
    assert grade(s, LEAVES + 5 * DAY, policy)["progress"]["held"] == held(
        "silver", LEAVES + GRACE, "potential", spend=50_000.0
    )


def _warnings(out: list[Event]) -> list[Event]:
    return [o for o in out if o["type"] == "tier_warning"]


def _downs(out: list[Event]) -> list[tuple[str, str]]:
    return [
        (o["occurred_at"], o["tier"])
        for o in out
        if o["type"] == "tier_changed" and o["direction"] == "down"
    ]


def test_a_grace_that_ends_is_warned_of_once_at_the_exact_instant(policy: Policy) -> None:
    _, out = run([order("e1", T0 + 3600, 60_000)], policy, until=LEAVES + 100 * DAY)
    [warning] = _warnings(out)
    assert warning["occurred_at"] == at(LEAVES + GRACE - WARN)
    assert warning["cause"] == {"kind": "inactivity"}
    assert (warning["tier"], warning["downgrade_to"]) == ("silver", "potential")
    assert warning["downgrade_at"] == at(LEAVES + GRACE)
    assert warning["needs"] == needs(spend=50_000.0, before=LEAVES + GRACE)
    assert _downs(out)[-1] == (at(LEAVES + GRACE), "potential")
    # The warning quotes what the snapshot at its instant says.
    s2, _ = run([order("e1", T0 + 3600, 60_000)], policy)
    g = grade(s2, LEAVES + GRACE - WARN, policy)
    hold = {k: warning[k] for k in ("tier", "downgrade_at", "downgrade_to", "needs")}
    assert g["progress"]["held"] == hold


@pytest.mark.parametrize(
    ("order_at", "amount", "warned", "falls"),
    [
        (LEAVES + 5 * DAY, 50_000, False, False),  # earned back before the warning
        (LEAVES + GRACE - WARN - 1, 50_000, False, False),  # one second before it
        (LEAVES + GRACE - WARN, 50_000, True, False),  # at it: time first, then the event
        (LEAVES + 20 * DAY, 50_000, True, False),  # earned back after the warning
        (LEAVES + 20 * DAY, 49_999.99, True, True),  # a cent short: the tier falls
        (LEAVES + GRACE, 50_000, True, True),  # too late: the fall came first
    ],
)
def test_a_grace_interrupted_by_an_order(
    policy: Policy, order_at: int, amount: float, warned: bool, falls: bool
) -> None:
    _, out = run(
        [order("e1", T0, 60_000), order("e2", order_at, amount)], policy, until=LEAVES + 90 * DAY
    )
    assert len(_warnings(out)) == int(warned)
    assert any(when == at(LEAVES + GRACE) for when, _ in _downs(out)) == falls


def test_each_grace_period_is_warned_of_once(policy: Policy) -> None:
    """Back to silver during the first grace (after its warning), lapsing again a year
    later: a second grace, a second warning."""
    again = LEAVES + 20 * DAY
    _, out = run(
        [order("e1", T0, 60_000), order("e2", again, 55_000)],
        policy,
        until=again + 365 * DAY + 60 * DAY,
    )
    second_leaves = T0 + 385 * DAY + 365 * DAY
    assert [w["occurred_at"] for w in _warnings(out)] == [
        at(LEAVES + GRACE - WARN),
        at(second_leaves + GRACE - WARN),
    ]
    assert _downs(out) == [(at(second_leaves + GRACE), "potential")]


def test_a_refund_that_takes_the_tier_away_falls_at_once_unwarned(
    policy: Policy,
) -> None:
    _, out = run(
        [
            order("e1", T0, 60_000, oid="A"),
            order("e2", T0 + DAY, 20_000, oid="A", kind="order_refunded"),
        ],
        policy,
        until=LEAVES + 90 * DAY,
    )
    assert _downs(out)[0] == (at(T0 + DAY), "regular")
    # Regular, earned by the 40,000 left, lapses with time and is warned of as usual.
    assert [(w["tier"], w["occurred_at"]) for w in _warnings(out)] == [
        ("regular", at(LEAVES + GRACE - WARN))
    ]


def _policy(grace: int, warning: int) -> Policy:
    doc = default_doc()
    doc["policy_version"] = f"grace-{grace}-warn-{warning}"
    doc["tiers"]["downgrade_grace_days"] = grace
    doc["tiers"]["warning_days"] = warning
    return policy_from_dict(doc)


@pytest.mark.parametrize(
    ("grace", "warning", "warned_at"),
    [
        (30, 14, LEAVES + 16 * DAY),
        (30, 1, LEAVES + 29 * DAY),
        (10, 14, LEAVES),  # the grace is shorter: warned as it starts
        (14, 14, LEAVES),
        (30, 0, None),  # warnings off
        (0, 14, None),  # no grace: the tier falls at once, nothing to warn of
    ],
)
def test_warning_days_and_grace(grace: int, warning: int, warned_at: int | None) -> None:
    policy = _policy(grace, warning)
    _, out = run([order("e1", T0, 60_000)], policy, until=LEAVES + 60 * DAY)
    assert [w["occurred_at"] for w in _warnings(out)] == (
        [] if warned_at is None else [at(warned_at)]
    )
    assert _downs(out)[-1] == (at(LEAVES + grace * DAY), "potential")


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 500 * DAY), min_size=1, max_size=30))
def test_sweep_timing_does_not_change_the_warnings(policy: Policy, sweeps: list[int]) -> None:
    evs = [order("e1", T0, 60_000), order("e2", T0 + 200 * DAY, 3_000)]
    _, once = run(evs, policy, until=T0 + 500 * DAY)
    s = new_state("cust-1")
    many: list[Event] = []
    for ev in evs:
        many += apply(s, ev, policy).outputs
    for t in sorted(sweeps):
        many += advance(s, max(t + T0, s.as_of), policy)
    many += advance(s, T0 + 500 * DAY, policy)
    assert _warnings(many) == _warnings(once)
    assert many == once


@st.composite
def orders(draw: st.DrawFn) -> Event:
    return order(
        draw(st.uuids()).hex,
        T0 + draw(st.integers(0, 300 * DAY)),
        draw(st.sampled_from([10, 1_500, 3_000, 20_000, 45_000, 60_000])),
        oid=draw(st.sampled_from(["A", "B", "C", "D", "E"])),
        kind=draw(st.sampled_from(["order_placed"] * 4 + ["order_refunded", "order_cancelled"])),
    )


@settings(max_examples=150, deadline=None)
@given(st.lists(orders(), min_size=1, max_size=12))
def test_what_progress_foretells_is_what_time_does(policy: Policy, evs: list[Event]) -> None:
    """With no further event, the held tier falls exactly when and to where the snapshot
    said, warned of `warning_days` before unless its grace started later than that."""
    s = new_state("cust-1")
    for ev in sorted(evs, key=lambda e: e["occurred_at"]):
        apply(s, ev, policy)
    hold = snapshot(s, policy)["progress"]["held"]
    out = advance(s, s.as_of + 3 * 365 * DAY, policy)
    downs = [o for o in out if o["type"] == "tier_changed"]
    # A refund of an order never seen counts on its own day; that day leaving the window
    # raises the spend, and can raise the tier by time: a rise progress does not foretell.
    assume(all(o["direction"] == "down" for o in downs))
    if hold is None:
        assert downs == []
        return
    first = downs[0]
    assert (first["occurred_at"], first["previous_tier"], first["tier"]) == (
        hold["downgrade_at"],
        hold["tier"],
        hold["downgrade_to"],
    )
    warned = [w for w in _warnings(out) if w["occurred_at"] <= first["occurred_at"]]
    assert [w["downgrade_at"] for w in warned] == [hold["downgrade_at"]][: len(warned)]
    if warned:
        assert {k: warned[0][k] for k in hold} == hold
