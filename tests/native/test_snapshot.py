"""The native grade snapshot (`grading.build_snapshot`, without a churn model): after
every step of random fold sequences, and for every state of a replay (at its time and
after months of silence), the native dict must be the Python core's, to the bytes orjson
writes for it (1 == 1.0 for ==, not for orjson), key order included; so must the churn
reasons a churn_risk_changed event carries. And `round2`, the monetary's rounding."""

from __future__ import annotations

import struct
from collections import Counter
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import streams._native as native
from streams.core import engine, grading
from streams.core.compiled import DAY, LIFECYCLE_STAGES, CompiledPolicy
from streams.core.grading import build_snapshot
from streams.core.measures import churn_reasons
from streams.core.policy import Policy, load_policy
from streams.core.state import CustomerState, decode, encode, new_state
from streams.replay import Replayer
from streams.simulate import SimConfig, generate
from tests.native.test_folding import COMPILED, NATIVE_POLICY, OP, run


def _same(got: Any, want: Any) -> None:
    assert got == want
    # Without sorting, the key order too; with it, what the writers send.
    assert orjson.dumps(got) == orjson.dumps(want)
    assert orjson.dumps(got, option=orjson.OPT_SORT_KEYS) == orjson.dumps(
        want, option=orjson.OPT_SORT_KEYS
    )


def _compare(
    py: CustomerState, rs: native.State, c: CompiledPolicy, n: native.Policy, seen: Counter[str]
) -> None:
    t = py.as_of
    want = build_snapshot(py, t, c)
    _same(rs.snapshot(t, n), want)
    _same(rs.churn_reasons_dicts(t, n), churn_reasons(py, t, c))
    seen[f"lifecycle {want['lifecycle']}"] += 1
    seen[f"band {want['churn']['band']}"] += 1
    seen[f"tier {want['tier']}"] += 1
    seen["reasons" if want["churn"]["reasons"] else "no reasons"] += 1
    seen["no recency" if want["rfm"]["recency_days"] is None else "recency"] += 1


def test_the_snapshots_of_random_sequences_agree() -> None:
    seen: Counter[str] = Counter()

    def each(op: tuple[Any, ...], py: CustomerState, rs: native.State, _: Any) -> None:
        _compare(py, rs, COMPILED, NATIVE_POLICY, seen)

    @settings(max_examples=1500, deadline=None)
    @given(st.lists(OP, max_size=80))
    def compare(ops: list[tuple[Any, ...]]) -> None:
        run(ops, each)

    compare()
    # After settles the held grades move off their defaults. The rarer stages and bands
    # come up in a run or not: the replay's test covers them.
    wanted = [f"lifecycle {x}" for x in ("prospect", "new", "active")]
    wanted += [f"tier {x}" for x in COMPILED.tier_names]
    wanted += ["band low", "band medium", "reasons", "no reasons", "no recency", "recency"]
    assert not [w for w in wanted if not seen[w]], seen


def test_no_reasons_at_a_score_of_zero_even_with_a_part() -> None:
    """Two orders 1,727,999 s apart (a cadence just under 20 days) and 30 days of silence:
    1.5000009x the cadence, a recency part of 6e-7, a score of 0.0: no reasons."""
    ops: list[tuple[Any, ...]] = [
        ("order", 0, "o1", 1_727_999, 10_000, True),
        ("order", 0, "o2", 0, 10_000, True),
        ("move", 30 * DAY),
    ]
    py, rs = run(ops)
    want = build_snapshot(py, py.as_of, COMPILED)
    assert want["churn"]["score"] == 0.0
    assert want["churn"]["reasons"] == []
    assert [r["code"] for r in churn_reasons(py, py.as_of, COMPILED)] == ["overdue"]
    _compare(py, rs, COMPILED, NATIVE_POLICY, Counter())


# The compiled core (mypyc) divides an int below 2^62 as (double)x / 100, rounding twice
# beyond 2^53 cents, where the interpreted core rounds once; the native core follows the
# compiled one, the one installed beside it.
COMPILED_CORE = not grading.__file__.endswith(".py")


@pytest.mark.skipif(not COMPILED_CORE, reason="the interpreted core rounds cents / 100 once")
@settings(max_examples=300, deadline=None)
@given(
    st.one_of(st.integers(0, 1 << 62), st.integers((1 << 62) - 10**4, (1 << 63) - 10**5)),
    st.integers(0, 2 * 10**4),
)
def test_a_monetary_beyond_2_53_cents_is_the_compiled_cores(cents: int, small: int) -> None:
    ops: list[tuple[Any, ...]] = [("order", 0, "o1", 0, cents, True)]
    if small:
        ops.append(("order", 0, "o2", DAY, small, False))
    py, rs = run(ops)
    _compare(py, rs, COMPILED, NATIVE_POLICY, Counter())


@pytest.mark.skipif(not COMPILED_CORE, reason="the interpreted core rounds cents / 100 once")
@pytest.mark.parametrize(
    ("cents", "monetary"),
    [
        (2**53 + 1, float(2**53 + 1) / 100),  # not (2**53 + 1) / 100
        (2**62 - 257, float(2**62 - 257) / 100),  # the last int mypyc divides as a double
        (2**62 + 496, (2**62 + 496) / 100),  # CPython's division, rounded once
    ],
)
def test_the_monetaries_where_one_or_two_roundings_differ(cents: int, monetary: float) -> None:
    assert cents / 100 != float(cents) / 100
    py, rs = run([("order", 0, "o1", 0, cents, True)])
    got = rs.snapshot(py.as_of, NATIVE_POLICY)
    assert got is not None
    assert got["rfm"]["monetary"] == monetary
    assert build_snapshot(py, py.as_of, COMPILED)["rfm"]["monetary"] == monetary


@pytest.mark.parametrize(
    "when",
    [-30_610_224_000, -30_610_224_001, 253_402_300_799, 253_402_300_800, 0, -1],
)
def test_years_outside_1000_9999_are_left_to_python(when: int) -> None:
    """1000-01-01T00:00:00Z and 9999-12-31T23:59:59Z are the last instants formatted
    natively; beyond, Python asks strftime and the native snapshot is None."""
    py, rs = new_state("c-1"), native.State("c-1")
    py.as_of = when
    rs.move_to(when)
    got = rs.snapshot(when, NATIVE_POLICY)
    if -30_610_224_000 <= when < 253_402_300_800:
        _same(got, build_snapshot(py, when, COMPILED))
    else:
        assert got is None


@pytest.fixture(scope="module")
def replayed() -> tuple[Policy, dict[str, CustomerState]]:
    policy = load_policy(None)
    replayer = Replayer(policy, emit=lambda _: None, dead=lambda _: None, native=False)
    config = SimConfig(late_rate=0.05, duplicate_rate=0.03)
    for n, record in enumerate(generate(400, 400, 11, config=config)):
        replayer.feed(n, record.value)
    return policy, replayer.states


def test_the_snapshots_of_a_replay_agree(replayed: tuple[Policy, dict[str, CustomerState]]) -> None:
    """Every final state, at its time and 30, 90 and 200 days of silence later (advanced
    by the Python core: silent and churned stages, overdue reasons, tiers falling)."""
    policy, states = replayed
    c = policy.compiled
    n = native.Policy(c)
    seen: Counter[str] = Counter()
    assert len(states) > 300
    for state in states.values():
        _compare(state, native.State.decode(encode(state)), c, n, seen)
        for days in (30, 90, 200):
            later = decode(encode(state))
            engine.advance(later, state.as_of + days * DAY, policy)
            _compare(later, native.State.decode(encode(later)), c, n, seen)
    wanted = [f"lifecycle {x}" for x in LIFECYCLE_STAGES]
    wanted += [f"tier {x}" for x in c.tier_names] + [f"band {x}" for x in c.band_names]
    wanted += ["reasons", "no reasons", "no recency", "recency"]
    assert not [w for w in wanted if not seen[w]], seen


# Exact ties at the 3rd decimal (multiples of 1/8), near-ties, cents and the rest.
_floats = st.one_of(
    st.integers(-(10**6), 10**6).map(lambda k: k / 8),
    st.integers(0, 10**7).map(lambda k: (k + 0.5) / 100),
    st.integers(0, 1 << 62).map(lambda k: k / 100),
    st.sampled_from([0.0, -0.0, 2.675, 1.005, -0.001, 0.005, 0.015, 1e300, 5e-324]),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6),
    st.floats(),
)


@settings(max_examples=5000, deadline=None)
@given(_floats)
def test_round2(x: float) -> None:
    # The very bits: the sign of a zero, NaN.
    assert struct.pack("<d", native.round2(x)) == struct.pack("<d", round(x, 2)), x
