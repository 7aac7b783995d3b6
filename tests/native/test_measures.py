"""Slice 3 of the native hot path, begun (docs/grading.md, "Decision"): the measures
(RFM, segment, qualifying tier, lifecycle, value class, survey flags, intent) and the
churn score's hot path and reasons (without a churn model), on the states of random fold sequences,
at instants from the state's time to a year after; and `round4`."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import streams._native as native
from streams.core.measures import (
    churn_core,
    churn_reasons,
    churn_score,
    intent,
    lifecycle,
    poor_survey,
    qualifying_tier,
    rfm,
    round4,
    segment,
    value_class,
)
from tests.native.test_folding import COMPILED, NATIVE_POLICY, OP, run


def _python(py: Any, t: int) -> tuple[Any, ...]:
    c = COMPILED
    r = rfm(py, t, c)
    i = intent(py, t, c)
    return (
        tuple(r),
        segment(r.r, r.f, r.m, c),
        qualifying_tier(py, c),
        lifecycle(py, t, c),
        value_class(r.cents, c),
        poor_survey(py, t, c),
        (i.grade, i.ability, i.satisfaction, list(i.indicators)),
    )


@settings(max_examples=1500, deadline=None)
@given(st.lists(OP, max_size=80), st.lists(st.integers(0, 400 * 86_400), max_size=6))
def test_the_measures_agree(ops: list[tuple[Any, ...]], later: list[int]) -> None:
    py, rs = run(ops)
    c = COMPILED
    # The instants at which a day crosses a window's edge (engagement's halves, intent,
    # complaints), and the second before: where an off-by-one shows.
    edges = [(d + n) * 86_400 for d in py.idays for n in (c.intent_half_days, c.intent_days)]
    edges += [(d + c.complaint_days) * 86_400 for d in py.cdays]
    instants = [py.as_of + dt for dt in [0, *later]]
    instants += [t + e for t in edges for e in (-1, 0) if t + e >= py.as_of]
    for t in instants:
        assert rs.measures(t, NATIVE_POLICY) == _python(py, t), (t, ops)
        for engagement in (True, False):
            k = churn_core(py, t, COMPILED, engagement)
            facts = (k.recency, k.others, k.recency_days, k.cadence_days, k.base, k.engagement)
            want = (facts, churn_score(py, t, COMPILED))
            assert rs.churn(t, NATIVE_POLICY, engagement) == want, (t, engagement, ops)
        reasons = [(r["code"], r["message"]) for r in churn_reasons(py, t, COMPILED)]
        assert rs.churn_reasons(t, NATIVE_POLICY) == reasons, (t, ops)


# Exact ties at the 5th decimal (multiples of 1/32), near-ties, the edges, and the rest.
_floats = st.one_of(
    st.integers(-64, 64).map(lambda k: k / 32),
    st.integers(0, 20_000).map(lambda k: (k + 0.5) / 10_000),
    st.sampled_from([0.0, -0.0, 1.0, 1e-17, -1e-17, 5e-5, 1.00005, 0.99995]),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-2.0, max_value=2.0),
    st.floats(allow_nan=False),
)


@settings(max_examples=5000, deadline=None)
@given(_floats)
def test_round4(x: float) -> None:
    got, want = native.round4(x), round4(x)
    assert (got, str(got)) == (want, str(want)), x  # str: the sign of a zero as well
