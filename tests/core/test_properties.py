"""Properties of the core: duplicates, reordering, purity, determinism.

The due-time properties run under the default policy and under policies with a churn
model (both signals), whose band moves by time on the model's own curve."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core import timefmt
from streams.core.churn import churn_score
from streams.core.engine import advance, apply, new_state, revision, snapshot
from streams.core.grading import grade
from streams.core.lifecycle import lifecycle, stage_name
from streams.core.policy import Policy, load_policy, policy_from_dict
from streams.core.state import encode
from tests.core.builders import DAY, T0, Event, complaint, interaction, order
from tests.core.models import model_policy

POLICY = load_policy()


def _heavy() -> Policy:
    """The default with complaints, surveys and engagement weighing a lot: the parts that
    move the band between the silence's days (walks over midnights, held alerts)."""
    doc = POLICY.model_dump()
    doc["churn"]["weights"].update(complaints=0.6, surveys=0.5, engagement=0.5)
    doc["churn"]["complaints"]["half_weight"] = 0.5
    return policy_from_dict(doc)


# The default, and the same rules with a churn model's part.
POLICIES = pytest.mark.parametrize(
    "policy",
    [POLICY, model_policy(), model_policy(signal="p_alive")],
    ids=["default", "model-p_no_order", "model-p_alive"],
)
# For the due times, also heavier other parts. (Not for reordering: when one answer alone
# alerts, the order of two answers decides whether a transient alert and its cooldown
# happened, which held alerts are meant to remember.)
DUE_POLICIES = pytest.mark.parametrize(
    "policy",
    [POLICY, model_policy(), model_policy(signal="p_alive"), _heavy()],
    ids=["default", "model-p_no_order", "model-p_alive", "heavy-others"],
)
SPAN = 6 * DAY  # inside the 7-day lateness bound
INTERACTIONS = [
    "page_view",
    "app_open",
    "site_visit",
    "store_visit",
    "inbound_call",
    "inquiry",
    "purchase_inquiry",
    "price_inquiry",
    "email_open",
]


@st.composite
def events(draw: st.DrawFn, span: int = SPAN) -> Event:
    eid = draw(st.uuids()).hex
    t = T0 + draw(st.integers(0, span))
    kind = draw(st.sampled_from(["order", "order", "interaction", "complaint", "survey"]))
    if kind == "order":
        return order(
            eid,
            t,
            draw(st.sampled_from([0, 5, 99.99, 1500, 3000, 20_000, 60_000])),
            oid=draw(st.sampled_from(["A", "B", "C", "D"])),
            kind=draw(
                st.sampled_from(["order_placed"] * 3 + ["order_refunded", "order_cancelled"])
            ),
            currency=draw(st.sampled_from(["USD", "EUR", "JPY"])),
            discount=draw(st.sampled_from([None, 0, 10, 500])),
        )
    if kind == "interaction":
        return interaction(
            eid,
            t,
            draw(st.sampled_from(INTERACTIONS)),
        )
    if kind == "survey":
        ev = interaction(eid, t, "survey_response")
        for key, hi, lo in (("nps", 10, 0), ("csat", 5, 1), ("ces", 7, 1)):
            if draw(st.booleans()):
                ev[key] = draw(st.integers(lo, hi))
        return ev
    return complaint(
        eid,
        t,
        draw(st.sampled_from(["complaint_opened", "complaint_escalated", "complaint_resolved"])),
        draw(st.sampled_from(["K1", "K2", "K3"])),
        draw(st.sampled_from(["low", "medium", "high"])),
        draw(st.sampled_from(["billing", "delivery"])),
    )


def _run(evs: list[Event], policy: Policy = POLICY) -> tuple[Any, list[Event]]:
    s = new_state("cust-1")
    out: list[Event] = []
    for ev in evs:
        out.extend(apply(s, ev, policy).outputs)
    return s, out


@settings(max_examples=150, deadline=None)
@given(st.lists(events(), min_size=1, max_size=25), st.data())
def test_a_duplicate_changes_nothing(evs: list[Event], data: st.DataObject) -> None:
    s, _ = _run(evs)
    before = encode(s)
    again = data.draw(st.sampled_from(evs))
    r = apply(s, again, POLICY)
    assert r.duplicate
    assert (r.outputs, r.changed, r.rejection) == ([], False, None)
    assert encode(s) == before


@POLICIES
@settings(max_examples=200, deadline=None)
@given(st.lists(events(), min_size=1, max_size=25), st.randoms(use_true_random=False))
def test_reordering_within_the_lateness_bound_gives_the_same_snapshot(
    policy: Policy, evs: list[Event], rnd: Any
) -> None:
    shuffled = list(evs)
    rnd.shuffle(shuffled)
    a, _ = _run(evs, policy)
    b, _ = _run(shuffled, policy)
    end = T0 + SPAN + DAY
    advance(a, end, policy)
    advance(b, end, policy)
    assert snapshot(a, policy) == snapshot(b, policy)
    assert grade(a, end + 400 * DAY, policy) == grade(b, end + 400 * DAY, policy)


@settings(max_examples=60, deadline=None)
@given(st.lists(events(span=200 * DAY), min_size=1, max_size=40))
def test_same_input_gives_byte_identical_outputs(evs: list[Event]) -> None:
    evs = sorted(evs, key=lambda e: str(e["occurred_at"]))

    def once() -> bytes:
        s, out = _run(evs)
        out.extend(advance(s, T0 + 800 * DAY, POLICY))
        return orjson.dumps([out, snapshot(s, POLICY)]) + encode(s)

    assert once() == once()


@DUE_POLICIES
@settings(max_examples=60, deadline=None)
@given(st.lists(events(span=200 * DAY), min_size=1, max_size=40))
def test_outputs_do_not_depend_on_sweep_timing(policy: Policy, evs: list[Event]) -> None:
    evs = sorted(evs, key=lambda e: str(e["occurred_at"]))
    s1, out1 = _run(evs, policy)
    out1.extend(advance(s1, T0 + 800 * DAY, policy))
    s2, out2 = _run(evs, policy)
    for day in range(0, 800, 13):
        out2.extend(advance(s2, T0 + day * DAY, policy))
    out2.extend(advance(s2, T0 + 800 * DAY, policy))
    assert out1 == out2
    assert snapshot(s1, policy) == snapshot(s2, policy)


class _NoClock(dt.datetime):
    @classmethod
    def now(cls, tz: dt.tzinfo | None = None) -> _NoClock:
        raise AssertionError("the core read the wall clock (datetime.now)")

    @classmethod
    def utcnow(cls) -> _NoClock:
        raise AssertionError("the core read the wall clock (datetime.utcnow)")

    @classmethod
    def today(cls) -> _NoClock:
        raise AssertionError("the core read the wall clock (datetime.today)")


def test_grading_never_reads_the_wall_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_: object) -> float:
        raise AssertionError("the core read the wall clock (time)")

    for name in ("time", "time_ns", "monotonic", "perf_counter", "localtime"):
        monkeypatch.setattr(time, name, boom)
    monkeypatch.setattr(timefmt, "datetime", _NoClock)
    monkeypatch.setattr(dt, "datetime", _NoClock)
    s = new_state("cust-1")
    evs = [
        order("e1", T0, 5000),
        interaction("e2", T0 + DAY, "survey_response", nps=2),
        complaint("e3", T0 + 2 * DAY, "complaint_opened", "K", "high"),
        order("e4", T0 + 100 * DAY, 60_000),
    ]
    out = []
    for ev in evs:
        out.extend(apply(s, ev, POLICY).outputs)
    out.extend(advance(s, T0 + 900 * DAY, POLICY))
    assert out
    assert grade(s, T0 + 1000 * DAY, POLICY)["lifecycle"] == "churned"


@DUE_POLICIES
@settings(max_examples=300, deadline=None)
@given(st.lists(events(span=200 * DAY), min_size=1, max_size=40), st.integers(1, 400))
def test_due_times_never_miss_a_change(policy: Policy, evs: list[Event], days_after: int) -> None:
    """Between due times nothing categorical may move: the held stage and band, kept only
    at due times and events, equal a fresh evaluation at any instant."""
    evs = sorted(evs, key=lambda e: str(e["occurred_at"]))
    s, _ = _run(evs, policy)
    c = policy.compiled
    start = s.as_of
    for step in range(0, days_after * DAY, 5 * DAY + 7777):
        t = start + step
        advance(s, t, policy)
        assert stage_name(s.stage) == stage_name(lifecycle(s, t, c))
        assert (s.band or c.band_names[0]) == c.band_names[churn_score(s, t, c)[1]]
        # Nothing categorical a snapshot shows moves between due times: the snapshot at
        # as_of (the last due processed) grades like a fresh look at t.
        assert _categories(snapshot(s, policy)) == _categories(grade(s, t, policy))


def _categories(g: dict[str, Any]) -> tuple[Any, ...]:
    r = g["rfm"]
    return (
        r["code"],
        r["frequency"],
        r["monetary"],
        g["segment"],
        g["tier"],
        g["lifecycle"],
        g["intent_grade"],
        g["value_class"],
        g["churn"]["band"],
    )


def _with_sweeps(
    evs: list[Event], cuts: list[float], policy: Policy = POLICY
) -> tuple[Any, list[Event], int]:
    """Apply sorted events with an extra advance at a fraction of each gap (cut < 0: none)."""
    s = new_state("cust-1")
    out: list[Event] = []
    sweeps = 0
    prev = None
    for ev, cut in zip(evs, cuts, strict=True):
        t = timefmt.parse_rfc3339(str(ev["occurred_at"]))
        if prev is not None and cut >= 0:
            out.extend(advance(s, prev + int((t - prev) * cut), policy))
            sweeps += 1
        out.extend(apply(s, ev, policy).outputs)
        prev = t
    return s, out, sweeps


@DUE_POLICIES
@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(events(span=300 * DAY), st.floats(-1, 1)), min_size=1, max_size=40),
    st.integers(0, 500),
)
def test_extra_sweeps_between_events_change_nothing(
    policy: Policy, pairs: list[tuple[Event, float]], tail_days: int
) -> None:
    """Sweeps at arbitrary moments between events (beyond the due-driven ones inside
    `apply`) give the same outputs and the same final snapshot, as_of included."""
    pairs = sorted(pairs, key=lambda p: str(p[0]["occurred_at"]))
    evs = [e for e, _ in pairs]
    plain, out_plain, _ = _with_sweeps(evs, [-1.0] * len(evs), policy)
    swept, out_swept, _ = _with_sweeps(evs, [cut for _, cut in pairs], policy)
    assert out_swept == out_plain
    assert snapshot(swept, policy) == snapshot(plain, policy)
    last = plain.as_of
    end = last + tail_days * DAY
    # A sweep at the end too, and the pure grade at an arbitrary later instant.
    out_plain.extend(advance(plain, end, policy))
    for day in range(0, tail_days, 17):
        out_swept.extend(advance(swept, last + day * DAY, policy))
    out_swept.extend(advance(swept, end, policy))
    assert out_swept == out_plain
    assert snapshot(swept, policy) == snapshot(plain, policy)
    assert grade(swept, end + 3 * DAY, policy) == grade(plain, end + 3 * DAY, policy)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(events(span=300 * DAY), st.floats(-1, 1)), min_size=1, max_size=30),
    st.data(),
)
def test_changed_says_whether_the_snapshot_changed(
    pairs: list[tuple[Event, float]], data: st.DataObject
) -> None:
    """`Result.changed` and a moved `revision` both mean: the snapshot is not the same."""
    pairs = sorted(pairs, key=lambda p: str(p[0]["occurred_at"]))
    s = new_state("cust-1")
    prev = None
    for ev, cut in pairs:
        t = timefmt.parse_rfc3339(str(ev["occurred_at"]))
        if prev is not None and cut >= 0:
            before, rev = snapshot(s, POLICY), revision(s)
            advance(s, prev + int((t - prev) * cut), POLICY)
            assert (revision(s) != rev) == (snapshot(s, POLICY) != before)
        before, rev = snapshot(s, POLICY), revision(s)
        if data.draw(st.booleans()):  # sometimes a duplicate or a late copy first
            old = data.draw(st.sampled_from([e for e, _ in pairs]))
            r = apply(s, old, POLICY)
            if not r.changed:
                assert (snapshot(s, POLICY), revision(s)) == (before, rev)
            before, rev = snapshot(s, POLICY), revision(s)
        r = apply(s, ev, POLICY)
        assert r.changed == (r.rejection is None and not r.duplicate)
        assert r.changed == (revision(s) != rev) == (snapshot(s, POLICY) != before)
        prev = t


@st.composite
def engaged_customer(draw: st.DrawFn) -> list[Event]:
    """A buyer (able to pay) with many intent signals and swings in engagement: the
    intent grade and the engagement part of churn both move by time."""
    evs: list[Event] = [order("o-big", T0, draw(st.sampled_from([1500, 5000, 60_000])))]
    kinds = [*INTERACTIONS[:7], "email_open"]
    for i in range(draw(st.integers(1, 40))):
        t = T0 + draw(st.integers(0, 150 * DAY))
        evs.append(interaction(f"i{i}", t, draw(st.sampled_from(kinds))))
    if draw(st.booleans()):
        evs.append(order("o-2", T0 + draw(st.integers(0, 150 * DAY)), 50, discount=0))
    if draw(st.booleans()):
        evs.append(interaction("s", T0 + draw(st.integers(0, 150 * DAY)), "survey_response", nps=2))
    if draw(st.booleans()):
        t = T0 + draw(st.integers(0, 150 * DAY))
        evs.append(
            complaint("k", t, "complaint_opened", "K1", draw(st.sampled_from(["low", "high"])))
        )
    return sorted(evs, key=lambda e: str(e["occurred_at"]))


@DUE_POLICIES
@settings(max_examples=300, deadline=None)
@given(engaged_customer(), st.integers(1, 300), st.integers(1, 6 * DAY))
def test_due_times_never_miss_an_intent_or_band_change(
    policy: Policy, evs: list[Event], days_after: int, stride: int
) -> None:
    s = new_state("cust-1")
    c = policy.compiled
    for ev in evs:
        apply(s, ev, policy)
        t = s.as_of + stride
        assert _categories(grade(s, t, policy)) == _categories(_looked_at(s, t, policy))
    start = s.as_of
    for step in range(0, days_after * DAY, stride + 3 * DAY):
        t = start + step
        advance(s, t, policy)
        assert (s.band or c.band_names[0]) == c.band_names[churn_score(s, t, c)[1]]
        assert _categories(snapshot(s, policy)) == _categories(grade(s, t, policy))


def _looked_at(s: Any, t: int, policy: Policy) -> dict[str, Any]:
    """The grade at t after advancing a copy (the same as `grade`, by another road)."""
    from streams.core.state import decode

    copy = decode(encode(s))
    advance(copy, t, policy)
    return snapshot(copy, policy)


@DUE_POLICIES
@settings(max_examples=300, deadline=None)
@given(engaged_customer())
def test_the_due_apply_keeps_covers_the_intent_grade_fall(policy: Policy, evs: list[Event]) -> None:
    """After every event, ``s.due`` is at or before the instant the intent grade next
    falls: `apply` skips that walk for an interaction that brings no indicator to A (the
    old due covers it then), and must never skip one that moves it earlier."""
    from streams.core.due import intent_grade_due
    from streams.core.state import decode

    s = new_state("cust-1")
    for ev in evs:
        apply(s, ev, policy)
        falls = intent_grade_due(decode(encode(s)), policy.compiled)
        if falls is not None:
            assert s.due is not None
            assert s.due <= falls
