"""Slice 3 of the native hot path, begun (docs/grading.md, "Decision"): the measures
(RFM, segment, qualifying tier, lifecycle, value class, survey flags, intent), on the
states of random fold sequences, at instants from the state's time to a year after."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core.measures import (
    intent,
    lifecycle,
    poor_survey,
    qualifying_tier,
    rfm,
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
    for dt in [0, *later]:
        t = py.as_of + dt
        assert rs.measures(t, NATIVE_POLICY) == _python(py, t), (t, ops)
