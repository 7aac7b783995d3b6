"""RFM scores at their bin edges, the rolling window, money and segments."""

from __future__ import annotations

import pytest

from streams.core.engine import apply, new_state, snapshot
from streams.core.grading import grade
from streams.core.policy import Policy
from tests.core.builders import CID, DAY, T0, order, run


@pytest.mark.parametrize(
    ("days", "r"),
    [(0, 4), (91, 4), (92, 3), (182, 3), (183, 2), (365, 2), (366, 1), (900, 1)],
)
def test_recency_bin_edges(policy: Policy, days: int, r: int) -> None:
    s, _ = run([order("e1", T0, 100)], policy)
    g = grade(s, T0 + days * DAY, policy)
    assert g["rfm"]["recency_days"] == days
    assert g["rfm"]["r"] == r


def test_recency_counts_whole_days(policy: Policy) -> None:
    s, _ = run([order("e1", T0 + 3600, 100)], policy)
    assert grade(s, T0 + 3600 + 92 * DAY - 1, policy)["rfm"]["r"] == 4  # 91.99 days
    assert grade(s, T0 + 3600 + 92 * DAY, policy)["rfm"]["r"] == 3


@pytest.mark.parametrize(
    ("orders", "f"), [(1, 1), (2, 1), (3, 2), (5, 2), (6, 3), (10, 3), (11, 4), (30, 4)]
)
def test_frequency_bins(policy: Policy, orders: int, f: int) -> None:
    s, _ = run([order(f"e{i}", T0 + i * 3600, 10) for i in range(orders)], policy)
    assert snapshot(s, policy)["rfm"]["frequency"] == orders
    assert snapshot(s, policy)["rfm"]["f"] == f


@pytest.mark.parametrize(
    ("amount", "m"),
    [
        (0.01, 1),  # below one unit still scores M1: a buyer is not a non-buyer
        (999.99, 1),
        (2999.99, 1),
        (3000, 2),
        (5999.99, 2),
        (6000, 3),
        (10999.99, 3),
        (11000, 4),
        (0, 0),
    ],
)
def test_monetary_bins(policy: Policy, amount: float, m: int) -> None:
    s, _ = run([order("e1", T0, amount)], policy)
    g = snapshot(s, policy)
    assert g["rfm"]["monetary"] == round(amount, 2)
    assert g["rfm"]["m"] == m


def test_no_orders_is_a_prospect(policy: Policy) -> None:
    g = snapshot(new_state(CID), policy)
    assert g["rfm"] == {
        "recency_days": None,
        "frequency": 0,
        "monetary": 0.0,
        "r": 0,
        "f": 0,
        "m": 0,
        "code": "R0F0M0",
    }
    assert g["segment"] == "Prospect"


def test_window_is_365_utc_days(policy: Policy) -> None:
    # An order of day D counts while today <= D + 364, and leaves at midnight of D + 365.
    s, _ = run([order("e1", T0 + 10 * 3600, 500)], policy)
    inside = grade(s, T0 + 365 * DAY - 1, policy)["rfm"]
    outside = grade(s, T0 + 365 * DAY, policy)["rfm"]
    assert (inside["frequency"], inside["monetary"]) == (1, 500.0)
    assert (outside["frequency"], outside["monetary"], outside["r"]) == (0, 0.0, 2)


def test_refund_lowers_monetary_and_cancel_removes_the_order(policy: Policy) -> None:
    s, _ = run(
        [
            order("e1", T0, 1000, oid="A"),
            order("e2", T0 + 60, 400, oid="B"),
            order("e3", T0 + 120, 250, oid="A", kind="order_refunded"),
            order("e4", T0 + 180, 400, oid="B", kind="order_cancelled"),
        ],
        policy,
    )
    rfm = snapshot(s, policy)["rfm"]
    assert (rfm["frequency"], rfm["monetary"]) == (1, 750.0)


def test_refund_never_makes_spend_negative(policy: Policy) -> None:
    s, _ = run(
        [order("e1", T0, 100, oid="A"), order("e2", T0 + 1, 500, oid="A", kind="order_refunded")],
        policy,
    )
    assert snapshot(s, policy)["rfm"]["monetary"] == 0.0
    assert snapshot(s, policy)["rfm"]["m"] == 0


def test_refund_of_an_unknown_order_lowers_spend_on_its_day(policy: Policy) -> None:
    s, _ = run(
        [order("e1", T0, 900, oid="A"), order("e2", T0 + 1, 100, oid="Z", kind="order_refunded")],
        policy,
    )
    assert snapshot(s, policy)["rfm"]["monetary"] == 800.0


def test_cancelling_the_only_order_makes_a_prospect_again(policy: Policy) -> None:
    s, out = run(
        [order("e1", T0, 100, oid="A"), order("e2", T0 + 60, 100, oid="A", kind="order_cancelled")],
        policy,
    )
    g = snapshot(s, policy)
    assert (g["rfm"]["code"], g["lifecycle"]) == ("R0F0M0", "prospect")
    assert [(o["previous_stage"], o["stage"]) for o in out] == [
        ("prospect", "new"),
        ("new", "prospect"),
    ]


@pytest.mark.parametrize(
    ("amount", "currency", "usd"),
    [(100, "USD", 100.0), (100, "EUR", 108.0), (100, "GBP", 127.0), (10000, "JPY", 67.0)],
)
def test_currency_conversion(policy: Policy, amount: float, currency: str, usd: float) -> None:
    s, _ = run([order("e1", T0, amount, currency=currency)], policy)
    assert snapshot(s, policy)["rfm"]["monetary"] == usd


def test_unknown_currency_is_rejected_without_touching_the_state(policy: Policy) -> None:
    s, _ = run([order("e1", T0, 100)], policy)
    before = repr(s)
    r = apply(s, order("e2", T0 + 5, 100, currency="XAU"), policy)
    assert r.rejection is not None
    assert r.rejection.code == "unknown_currency"
    assert "'XAU'" in r.rejection.message
    assert (r.changed, r.outputs, repr(s)) == (False, [], before)


@pytest.mark.parametrize(
    ("events", "segment"),
    [
        ([], "Prospect"),
        ([order("e1", T0, 50)], "New"),  # R4F1
        ([order(f"e{i}", T0 + i, 1000) for i in range(11)], "Champions"),  # R4F4M4
        ([order(f"e{i}", T0 + i, 10) for i in range(6)], "Loyal"),  # R4F3M1
        ([order(f"e{i}", T0 + i, 10) for i in range(3)], "Potential Loyalist"),  # R4F2M1
    ],
)
def test_segments(policy: Policy, events: list[dict[str, object]], segment: str) -> None:
    s, _ = run(events, policy)
    assert snapshot(s, policy)["segment"] == segment


@pytest.mark.parametrize(
    ("days_later", "code", "segment"),
    [
        (100, "R3F4M4", "Loyal"),
        (200, "R2F4M4", "Cannot Lose"),
        (367, "R1F0M0", "Lost"),
    ],
)
def test_segments_move_with_time(policy: Policy, days_later: int, code: str, segment: str) -> None:
    s, _ = run([order(f"e{i}", T0 + i, 1000) for i in range(11)], policy)
    g = grade(s, T0 + days_later * DAY, policy)
    assert (g["rfm"]["code"], g["segment"]) == (code, segment)


def test_grade_does_not_mutate_the_state(policy: Policy) -> None:
    s, _ = run([order("e1", T0, 100)], policy)
    before = repr(s)
    grade(s, T0 + 400 * DAY, policy)
    assert repr(s) == before
    with pytest.raises(ValueError, match="before"):
        grade(s, T0 - 1, policy)
