"""Intent grade A-E: the matrix, and each condition and indicator from events."""

from __future__ import annotations

import itertools

import pytest

from streams.core.engine import snapshot
from streams.core.intent import intent, intent_grade
from streams.core.policy import Policy
from tests.core.builders import DAY, T0, Event, complaint, interaction, order, run


def _expected(ability: bool, satisfaction: bool, n: int) -> str:
    # product.md §2, written out independently of the implementation.
    if ability and satisfaction:
        return {5: "A", 4: "B", 3: "B"}.get(n, "C")
    if ability != satisfaction:
        return "C" if n == 5 else "D"
    return "E"


@pytest.mark.parametrize(
    ("ability", "satisfaction", "n"),
    list(itertools.product([True, False], [True, False], range(6))),
)
def test_matrix(ability: bool, satisfaction: bool, n: int) -> None:
    assert intent_grade(ability, satisfaction, n) == _expected(ability, satisfaction, n)


def _all_indicators(t: int = T0) -> list[Event]:
    """A customer with ability to pay, satisfied, and every indicator at A."""
    return [
        order("o1", t, 1500),  # ability (>= 1,000 USD) and price tolerance (no discount)
        interaction("v1", t + DAY, "page_view"),
        interaction("v2", t + 2 * DAY, "app_open"),
        interaction("v3", t + 3 * DAY, "store_visit"),  # 3 visit days; a store visit
        interaction("c1", t + 3 * DAY, "inbound_call"),
        interaction("q1", t + 3 * DAY, "purchase_inquiry"),
    ]


@pytest.mark.parametrize(
    ("drop", "grade", "indicator"),
    [
        (set(), "A", None),
        ({"v1"}, "B", 0),  # repeat visits: only 2 visit days left
        ({"c1"}, "B", 1),  # inbound calls
        ({"q1"}, "B", 3),  # purchase-process inquiries
        ({"c1", "q1"}, "B", None),
        ({"v1", "c1", "q1"}, "C", None),
    ],
)
def test_indicators(policy: Policy, drop: set[str], grade: str, indicator: int | None) -> None:
    s, _ = run([e for e in _all_indicators() if e["event_id"] not in drop], policy)
    got = intent(s, s.as_of, policy.compiled)
    assert got.grade == grade
    if indicator is not None:
        assert not got.indicators[indicator]
        assert sum(got.indicators) == 4


def test_site_visit_counts_as_site_store_visit(policy: Policy) -> None:
    events = [e for e in _all_indicators() if e["event_id"] != "v3"]
    events.append(interaction("v3", T0 + 3 * DAY, "site_visit"))
    s, _ = run(events, policy)
    assert intent(s, s.as_of, policy.compiled).indicators == (True,) * 5


def test_discounted_order_is_not_price_tolerance(policy: Policy) -> None:
    events = _all_indicators()
    events[0] = order("o1", T0, 1500, discount=500)  # 25% off
    s, _ = run(events, policy)
    got = intent(s, s.as_of, policy.compiled)
    assert got.indicators[4] is False
    assert got.grade == "B"


@pytest.mark.parametrize("discount", [None, 0, 10])
def test_a_free_order_is_not_price_tolerance(policy: Policy, discount: float | None) -> None:
    # The spend comes from a discounted order; a zero-amount order must not stand in for
    # the full-price one (it turned this intent grade B into A).
    events = _all_indicators()
    events[0] = order("o1", T0, 1500, discount=500)
    events.append(order("o2", T0 + 4 * DAY, 0, discount=discount))
    s, _ = run(events, policy)
    got = intent(s, s.as_of, policy.compiled)
    assert got.indicators[4] is False
    assert got.grade == "B"


def test_open_billing_complaint_takes_ability_away(policy: Policy) -> None:
    s, _ = run(
        [
            *_all_indicators(),
            complaint("k1", T0 + 4 * DAY, "complaint_opened", "K", "low", "billing"),
        ],
        policy,
    )
    got = intent(s, s.as_of, policy.compiled)
    assert (got.ability, got.satisfaction, got.grade) == (False, True, "C")


def test_poor_survey_takes_satisfaction_away(policy: Policy) -> None:
    s, _ = run(
        [*_all_indicators(), interaction("s1", T0 + 4 * DAY, "survey_response", nps=2)], policy
    )
    got = intent(s, s.as_of, policy.compiled)
    assert (got.ability, got.satisfaction, got.grade) == (True, False, "C")


def test_serious_open_complaint_takes_satisfaction_away(policy: Policy) -> None:
    k = complaint("k1", T0 + 4 * DAY, "complaint_opened", "K", "medium")
    s, _ = run([*_all_indicators(), k], policy)
    assert intent(s, s.as_of, policy.compiled).satisfaction is False
    resolved = complaint("k2", T0 + 5 * DAY, "complaint_resolved", "K", "medium")
    s, _ = run([*_all_indicators(), k, resolved], policy)
    assert intent(s, s.as_of, policy.compiled).grade == "A"


def test_prospect_without_spend_has_no_ability(policy: Policy) -> None:
    s, _ = run([e for e in _all_indicators() if e["type"] != "order_placed"], policy)
    assert snapshot(s, policy)["intent_grade"] == "D"  # satisfied, no ability shown


def test_indicators_leave_the_90_day_window(policy: Policy) -> None:
    s, _ = run(_all_indicators(), policy)
    later = T0 + 3 * DAY + 90 * DAY
    got = intent(s, later, policy.compiled)
    assert sum(got.indicators) == 0
