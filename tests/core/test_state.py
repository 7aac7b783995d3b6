"""CustomerState encoding: lossless, compact and bounded whatever the history."""

from __future__ import annotations

import random

import orjson
import pytest

from streams.core.engine import advance, apply, new_state, snapshot
from streams.core.policy import Policy
from streams.core.state import decode, encode
from tests.core.builders import CID, DAY, T0, Event, complaint, interaction, order, run

TYPES = ["page_view", "app_open", "site_visit", "email_open", "email_click", "store_visit"]


def typical_year(seed: int = 1) -> list[Event]:
    """A typical customer: ~4 orders and ~40 interactions a year, a survey, a complaint."""
    rng = random.Random(seed)
    events: list[Event] = []
    for i in range(4):
        events.append(order(f"o{i}", T0 + rng.randrange(365 * DAY), rng.uniform(20, 300)))
    for i in range(40):
        events.append(interaction(f"i{i}", T0 + rng.randrange(365 * DAY), rng.choice(TYPES)))
    events.append(interaction("s", T0 + 200 * DAY, "survey_response", nps=8))
    events.append(complaint("k", T0 + 100 * DAY, "complaint_opened", "K1", "low"))
    return sorted(events, key=lambda e: str(e["occurred_at"]))


def heavy_year(days: int = 730) -> list[Event]:
    """A heavy customer: orders every day, 30 interactions a day, complaints weekly."""
    rng = random.Random(7)
    events: list[Event] = []
    for d in range(days):
        t = T0 + d * DAY
        events.append(order(f"o{d}", t + 3600, 50, oid=f"order-{d:08d}"))
        for j in range(30):
            events.append(interaction(f"i{d}-{j}", t + 7200 + j * 60, rng.choice(TYPES)))
        if d % 7 == 0:
            events.append(complaint(f"k{d}", t + 9000, "complaint_opened", f"K{d}", "low"))
    return events


def test_round_trip_is_lossless(policy: Policy) -> None:
    s, _ = run(typical_year(), policy)
    back = decode(encode(s))
    assert back == s
    assert encode(back) == encode(s)
    assert snapshot(back, policy) == snapshot(s, policy)


def test_decode_refuses_foreign_bytes() -> None:
    with pytest.raises(ValueError, match="format"):
        decode(b"[2, 1, 2]")


def test_typical_customer_is_under_1kb(policy: Policy) -> None:
    sizes = []
    for seed in range(20):
        s, _ = run(typical_year(seed), policy)
        sizes.append(len(encode(s)))
    assert max(sizes) <= 1024, sizes


def test_heavy_customer_is_bounded(policy: Policy) -> None:
    s = new_state(CID)
    sizes = []
    for i, ev in enumerate(heavy_year()):
        r = apply(s, ev, policy)
        assert r.rejection is None or r.rejection.code == "too_late"
        if i % 5000 == 0:
            sizes.append(len(encode(s)))
    sizes.append(len(encode(s)))
    # Bounded: a second year adds nothing once the windows and caps are full.
    assert sizes[-1] < 64 * 1024
    assert max(sizes[len(sizes) // 2 :]) <= max(sizes[: len(sizes) // 2]) * 1.1
    assert len(s.orders) <= policy.limits.max_tracked_orders
    assert len(s.complaints) <= policy.limits.max_complaints
    assert len(s.seen) <= policy.events.dedup_max_ids
    assert max(s.idays) - min(s.idays) < policy.intent.window_days


def test_quiet_customer_shrinks(policy: Policy) -> None:
    s, _ = run(typical_year(), policy)
    advance(s, T0 + 3 * 365 * DAY, policy)
    assert (s.days, s.idays, s.cdays, s.seen) == ({}, {}, {}, {})
    assert len(encode(s)) < 300


def test_interaction_days_stay_in_day_order(policy: Policy) -> None:
    """The window walks read `idays` in key order: a late event's older day goes in its
    place, and decoding puts a state encoded out of order back in order."""
    s = new_state(CID)
    for eid, t in (("a", T0 + 3 * DAY), ("b", T0 + 5 * DAY), ("c", T0 + DAY), ("d", T0 + 4 * DAY)):
        assert apply(s, interaction(eid, t, "page_view"), policy).rejection is None
    assert len(s.idays) == 4
    assert list(s.idays) == sorted(s.idays)
    rows = orjson.loads(encode(s))
    rows[14].reverse()
    assert list(decode(orjson.dumps(rows)).idays) == sorted(s.idays)


def test_a_survey_kept_as_one_answer_decodes_per_metric(policy: Policy) -> None:
    # States encoded when the latest answer was kept whole, [answered_at, nps, csat, ces],
    # decode with each answered metric at that time (and an unanswered one absent).
    s, _ = run([interaction("s1", T0, "survey_response", nps=2, csat=4)], policy)
    v = orjson.loads(encode(s))
    v[17] = [T0, 2, 4, -1]
    old = decode(orjson.dumps(v))
    assert old.survey == s.survey == [T0, 2, T0, 4, -(1 << 62), -1]
    assert snapshot(old, policy) == snapshot(s, policy)


def test_day_buckets_share_their_day_numbers_and_count_rows(policy: Policy) -> None:
    """Two customers with the same year share the objects of their buckets' days and
    interaction counts, whether built by events or decoded (`state.put_bucket`,
    `shared_counts`), and the sharing changes no value."""
    a, _ = run(typical_year(), policy)
    b = decode(encode(a))
    c, _ = run([{**e, "customer_id": "c-2"} for e in typical_year()], policy, cid="c-2")
    assert b == a
    assert b.idays
    assert b.days
    for other in (b, c):
        for mine, theirs in ((a.idays, other.idays), (a.days, other.days)):
            for day, day2 in zip(mine, theirs, strict=True):
                assert day == day2
                assert day is day2
        for counts, counts2 in zip(a.idays.values(), other.idays.values(), strict=True):
            assert counts == counts2
            assert counts is counts2


def test_sharing_is_bounded() -> None:
    """Past its bound the memo hands back what it is given and keeps nothing more."""
    from streams.core import state

    saved = dict(state._DAYS)
    try:
        days = [10**9 + i for i in range(state._SHARED_MAX + 10)]
        buckets: dict[int, int] = {}
        for d in days:
            state.put_bucket(buckets, d, 0)
        assert list(buckets) == days
        assert len(state._DAYS) == state._SHARED_MAX
        late = 10**9 + state._SHARED_MAX + 5
        assert late not in state._DAYS
    finally:
        state._DAYS.clear()
        state._DAYS.update(saved)
