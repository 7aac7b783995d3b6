"""Refusals, duplicates, lateness and the de-duplication bound."""

from __future__ import annotations

import pytest

from streams.core.engine import apply, event_time, new_state
from streams.core.policy import Policy
from streams.core.state import encode
from tests.core.builders import CID, DAY, T0, interaction, order, run


def test_duplicate_is_applied_once_and_is_not_a_rejection(policy: Policy) -> None:
    s, _ = run([order("e1", T0, 100)], policy)
    before = encode(s)
    r = apply(s, order("e1", T0, 100), policy)
    assert (r.duplicate, r.rejection, r.changed, r.outputs) == (True, None, False, [])
    assert encode(s) == before


def test_too_late_is_refused(policy: Policy) -> None:
    s, _ = run([order("e1", T0 + 30 * DAY, 100)], policy)
    ok = apply(s, interaction("i1", T0 + 23 * DAY, "page_view"), policy)  # 7 days: inside
    assert ok.rejection is None
    r = apply(s, interaction("i2", T0 + 23 * DAY - 1, "page_view"), policy)
    assert r.rejection is not None
    assert r.rejection.code == "too_late"
    assert "2024-01-24T00:00:00Z" in r.rejection.message
    assert not r.changed


@pytest.mark.parametrize(
    ("event", "code"),
    [
        (interaction("x", T0, "page_view", cid="someone-else"), "customer_mismatch"),
        (
            {**interaction("x", T0, "page_view"), "occurred_at": "2024-01-01T00:00:00"},
            "invalid_event",
        ),
        ({**interaction("x", T0, "page_view"), "occurred_at": "yesterday"}, "invalid_event"),
        ({**interaction("x", T0, "page_view"), "type": "page_scrolled"}, "unknown_type"),
        ({k: v for k, v in order("x", T0, 1).items() if k != "order_id"}, "invalid_event"),
        (
            {k: v for k, v in interaction("x", T0, "page_view").items() if k != "event_id"},
            "invalid_event",
        ),
    ],
)
def test_malformed_events_are_refused_not_raised(
    policy: Policy, event: dict[str, object], code: str
) -> None:
    s = new_state(CID)
    r = apply(s, event, policy)
    assert r.rejection is not None
    assert r.rejection.code == code
    assert encode(s) == encode(new_state(CID))


def test_dedup_cap_raises_the_lateness_floor(policy: Policy) -> None:
    cap = policy.events.dedup_max_ids
    s = new_state(CID)
    for i in range(cap + 1):  # one second apart: all within the lateness bound
        assert apply(s, interaction(f"i{i}", T0 + i, "page_view"), policy).rejection is None
    assert len(s.seen) <= cap
    assert s.dedup_floor is not None
    # Every forgotten id is older than the floor: replaying it is refused, never re-applied.
    replay = apply(s, interaction("i0", T0, "page_view"), policy)
    assert replay.rejection is not None
    assert replay.rejection.code == "too_late"
    newest = apply(s, interaction(f"i{cap}", T0 + cap, "page_view"), policy)
    assert newest.duplicate


def test_seen_ids_are_forgotten_past_the_lateness_bound(policy: Policy) -> None:
    s, _ = run([interaction(f"i{i}", T0 + i * DAY, "page_view") for i in range(30)], policy)
    assert len(s.seen) <= 30
    assert min(s.seen.values()) >= s.as_of - 7 * DAY


def test_event_time_matches_apply(policy: Policy) -> None:
    ev = {**order("e1", T0, 1), "occurred_at": "2024-01-01T02:00:00.999+02:00"}
    assert event_time(ev) == T0
    s, _ = run([ev], policy)
    assert s.as_of == T0
