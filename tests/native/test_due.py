"""The native due times (`streams.core.due`, without a churn model): after every step of
random fold sequences, each part of the due, `next_due_c`, the `before` shortcuts of
`churn_due` and `band_due`, and `indicator_reached` after each interaction folded, on the
Python core's state and on the native one, must be the same instants."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import streams._native as native
from streams.core import due
from streams.core.compiled import DAY, CompiledPolicy, compile_policy
from streams.core.measures import churn_core, intent_conditions
from streams.core.policy import load_policy
from streams.core.state import CustomerState
from tests.native.test_folding import COMPILED, NATIVE_POLICY, OP, START, run

Policies = tuple[CompiledPolicy, native.Policy]


def _dues(py: CustomerState, c: CompiledPolicy) -> tuple[int | None, ...]:
    """The Python core's parts, in the order of `native.State.dues`."""
    k = churn_core(py, py.as_of, c)
    return (
        due.orders_due(py, c),
        due.order_times_due(py, c),
        due.intent_grade_due(py, c),
        due.complaints_due(py, c),
        due.holds_due(py, c),
        due.churn_due(py, c),
        due.churn_due(py, c, worst_engagement=True),
        due.band_due(py, c, k),
    )


def _befores(answer: int | None, t0: int, spread: list[int]) -> list[int]:
    """Around the answer (where the shortcuts' off-by-ones show), and from the state's time."""
    near = [] if answer is None else [answer + e for e in (-1, 0, 1, -2 * DAY, -DAY, DAY)]
    return near + [t0 + dt for dt in (0, 1, *spread)]


def _kinds(py: CustomerState, c: CompiledPolicy, dues: tuple[int | None, ...]) -> list[str]:
    """Which branches gave these dues (counted, so the tests show they come up)."""
    seen = []
    intent, churn, band = dues[2], dues[5], dues[7]
    if intent is not None:
        ability, satisfaction = intent_conditions(py, py.as_of, c)
        n = len(due.indicator_falls(py, c))
        seen.append(
            "A->B"
            if ability and satisfaction and n >= 5
            else "B->C"
            if ability and satisfaction
            else "C->D"
        )
    if churn is not None:
        seen.append("churn")
    if band is not None:
        lo = py.as_of // DAY - c.intent_days
        midnights = {
            (d + n) * DAY for d in py.idays if d > lo for n in (c.intent_half_days, c.intent_days)
        }
        seen.append("band midnight" if band in midnights else "band crossing")
    return seen


def _checker(policies: Policies, seen: Counter[str], spread: list[int]) -> Any:
    c, n = policies

    def each(op: tuple[Any, ...], py: CustomerState, rs: native.State, day: int | None) -> None:
        if op[0] == "interaction" and day is not None:
            slot = op[1]
            reached = due.indicator_reached(py, slot, day, c)
            assert rs.indicator_reached(slot, day, n) == reached, op
            seen[f"reached {reached}"] += 1
        dues = _dues(py, c)
        assert rs.dues(n) == dues, op
        assert rs.next_due(n) == due.next_due_c(py, c), op
        seen.update(_kinds(py, c, dues))
        k = churn_core(py, py.as_of, c)
        if k.engagement > 0:
            seen["falling engagement"] += 1
        for worst, answer in ((False, dues[5]), (True, dues[6])):
            for before in _befores(answer, py.as_of, spread):
                want = due.churn_due(py, c, before=before, worst_engagement=worst)
                assert rs.churn_due_before(before, worst, n) == want, (op, before, worst)
                if want is None and answer is not None:
                    seen["churn shortcut"] += 1
        for before in _befores(dues[7], py.as_of, spread):
            want = due.band_due(py, c, k, before)
            assert rs.band_due_before(before, n) == want, (op, before)
            if want is None and dues[7] is not None:
                seen["band gave up"] += 1

    return each


# Branches that random sequences reach many times in a run (each step is checked).
COMMON = (
    "falling engagement",
    "churn",
    "band crossing",
    "band midnight",
    "churn shortcut",
    "band gave up",
    "reached True",
    "reached False",
)
_spread = st.lists(st.integers(-3 * DAY, 400 * DAY), max_size=3)


def _flat(runs: list[list[tuple[Any, ...]]]) -> list[tuple[Any, ...]]:
    return [op for r in runs for op in r]


# OP's sequences, with runs of interactions on one day, the day uniform over the intent
# window (OP's instants lean to the ends of their range): falling engagement and intent
# indicators need several in the window's halves, which OP alone seldom gives.
_burst = st.builds(
    lambda slot, days, secs, n: [("interaction", slot, days * DAY + secs)] * n,
    st.integers(0, 5),
    st.integers(0, 99),
    st.integers(0, DAY - 1),
    st.integers(2, 6),
)
OPS = st.lists(st.one_of(OP.map(lambda op: [op]), _burst), max_size=40).map(_flat)


def test_the_due_times_agree() -> None:
    seen: Counter[str] = Counter()

    @settings(max_examples=1500, deadline=None)
    @given(OPS, _spread)
    def compare(ops: list[tuple[Any, ...]], spread: list[int]) -> None:
        run(ops, _checker((COMPILED, NATIVE_POLICY), seen, spread))

    compare()
    assert not [b for b in COMMON if not seen[b]], seen


# Random sequences seldom (intent) or never (A and D need all five indicators, and both
# conditions or only one) reach these: a sequence each that does.
_ALL_FIVE: list[tuple[Any, ...]] = [
    ("order", 0, "o1", 0, 500_000, True),  # ability, and the full-price indicator
    ("interaction", 0, 0),
    ("interaction", 0, 2 * DAY),
    ("interaction", 1, 5 * DAY),  # the third visit day, and a store visit
    ("interaction", 2, DAY),
    ("interaction", 3, 3 * DAY),
]
RARE: dict[str, list[tuple[Any, ...]]] = {
    "A->B": _ALL_FIVE,
    "B->C": _ALL_FIVE[:4],
    # An open billing complaint of low severity: no ability, still satisfied.
    "C->D": [*_ALL_FIVE, ("complaint", 0, "c1", 0, 0, True)],
    # A detractor (0.15) whose interactions all move to the earlier half 35 days on:
    # engagement 1 then adds 0.15, medium at that midnight.
    "band midnight": [("survey", 0, 0, 5, 1), *[("interaction", 5, 10 * DAY)] * 4],
}


@pytest.mark.parametrize("branch", sorted(RARE))
def test_a_fixed_sequence_reaches(branch: str) -> None:
    seen: Counter[str] = Counter()
    run(RARE[branch], _checker((COMPILED, NATIVE_POLICY), seen, [DAY, 30 * DAY]))
    assert seen[branch], seen


def test_a_recency_crossing_on_a_walk_midnight() -> None:
    """An order at a midnight (random times never are): recency crosses into medium on
    day 150, the very midnight an interaction day moves to the earlier half. band_due
    gives that midnight, and with it as `before` gives up (a crossing counted at the
    stretch's end rather than its last second would not)."""
    ops: list[tuple[Any, ...]] = [
        ("order", 0, "o1", START % DAY, 50_000, False),
        ("move", 105 * DAY),
        ("interaction", 5, 0),  # day 105: it moves on day 150
    ]
    py, _ = run(ops, _checker((COMPILED, NATIVE_POLICY), Counter(), []))
    assert py.last_order is not None
    m = (py.last_order // DAY + 150) * DAY
    assert due.band_due(py, COMPILED, churn_core(py, py.as_of, COMPILED)) == m


DEFAULT = compile_policy(load_policy(None))
DEFAULTS = (DEFAULT, native.Policy(DEFAULT))


@settings(max_examples=300, deadline=None)
@given(OPS, _spread)
def test_the_due_times_agree_with_the_default_caps(
    ops: list[tuple[Any, ...]], spread: list[int]
) -> None:
    run(ops, _checker(DEFAULTS, Counter(), spread), DEFAULTS)
