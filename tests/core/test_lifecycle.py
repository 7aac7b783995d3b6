"""Lifecycle stages and their transitions, with time-caused outputs at their due times."""

from __future__ import annotations

import pytest

from streams.core.engine import advance, apply, snapshot
from streams.core.grading import grade
from streams.core.policy import Policy
from tests.core.builders import DAY, T0, Event, at, interaction, order, run


def _stages(out: list[Event]) -> list[tuple[str, str, str, str]]:
    return [
        (o["previous_stage"], o["stage"], o["occurred_at"], o["cause"]["kind"])
        for o in out
        if o["type"] == "lifecycle_changed"
    ]


@pytest.mark.parametrize(
    ("seconds_after", "stage"),
    [
        (0, "new"),
        (30 * DAY, "new"),
        (30 * DAY + 1, "active"),
        (90 * DAY, "active"),
        (90 * DAY + 1, "silent"),
        (365 * DAY, "silent"),
        (365 * DAY + 1, "churned"),
    ],
)
def test_stage_by_time(policy: Policy, seconds_after: int, stage: str) -> None:
    s, _ = run([order("e1", T0, 100)], policy)
    assert grade(s, T0 + seconds_after, policy)["lifecycle"] == stage


def test_prospect_stays_prospect_on_interactions(policy: Policy) -> None:
    s, out = run([interaction("e1", T0, "page_view")], policy)
    assert snapshot(s, policy)["lifecycle"] == "prospect"
    assert _stages(out) == []


def test_transitions_come_at_their_due_times(policy: Policy) -> None:
    _s, out = run([order("e1", T0, 100)], policy, until=T0 + 400 * DAY)
    assert _stages(out) == [
        ("prospect", "new", at(T0), "event"),
        ("new", "active", at(T0 + 30 * DAY + 1), "inactivity"),
        ("active", "silent", at(T0 + 90 * DAY + 1), "inactivity"),
        ("silent", "churned", at(T0 + 365 * DAY + 1), "inactivity"),
    ]


def test_sweep_timing_does_not_change_outputs(policy: Policy) -> None:
    _, once = run([order("e1", T0, 100)], policy, until=T0 + 400 * DAY)
    s, steps = run([order("e1", T0, 100)], policy)
    for day in range(1, 401, 7):
        steps.extend(advance(s, T0 + day * DAY, policy))
    steps.extend(advance(s, T0 + 400 * DAY, policy))
    assert steps == once


@pytest.mark.parametrize("gap_days", [91, 400])
def test_order_after_silence_reactivates_for_30_days(policy: Policy, gap_days: int) -> None:
    back = T0 + gap_days * DAY
    _s, out = run([order("e1", T0, 100), order("e2", back, 100)], policy, until=back + 40 * DAY)
    assert _stages(out)[-2:] == [
        ("silent" if gap_days < 365 else "churned", "reactivated", at(back), "event"),
        ("reactivated", "active", at(back + 30 * DAY + 1), "inactivity"),
    ]


def test_order_while_active_does_not_reactivate(policy: Policy) -> None:
    s, out = run([order("e1", T0, 100), order("e2", T0 + 80 * DAY, 100)], policy)
    assert snapshot(s, policy)["lifecycle"] == "active"
    assert "reactivated" not in [st[1] for st in _stages(out)]


def test_late_order_is_folded_at_as_of(policy: Policy) -> None:
    s, _ = run([order("e1", T0, 100), interaction("e2", T0 + 100 * DAY, "page_view")], policy)
    assert snapshot(s, policy)["lifecycle"] == "silent"
    # A day late, within the bound: it came after 99 days without an order, so it
    # reactivates; the transition is dated at as_of, when the grade changed.
    r = apply(s, order("e3", T0 + 99 * DAY, 100), policy)
    assert _stages(r.outputs) == [("silent", "reactivated", at(T0 + 100 * DAY), "event")]
