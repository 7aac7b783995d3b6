"""Slice 1 of the native hot path (docs/grading.md, "Decision"): the Rust state decodes
what the Python core encodes and encodes it again to the very same bytes."""

from __future__ import annotations

import pytest

import streams._native as native
from streams.core.policy import load_policy
from streams.core.state import CustomerState, decode, encode, new_state
from streams.replay import Replayer
from streams.simulate import SimConfig, generate


@pytest.fixture(scope="module")
def replayed() -> dict[str, CustomerState]:
    """The states of a replay with lateness, duplicates, refunds, complaints and surveys."""
    replayer = Replayer(load_policy(None), emit=lambda _: None, dead=lambda _: None, native=False)
    config = SimConfig(late_rate=0.05, duplicate_rate=0.03)
    for n, record in enumerate(generate(400, 400, 7, config=config)):
        replayer.feed(n, record.value)
    return replayer.states


def test_every_replayed_state_round_trips_to_the_same_bytes(
    replayed: dict[str, CustomerState],
) -> None:
    assert len(replayed) > 300
    filled = {"orders": 0, "complaints": 0, "survey": 0, "idays": 0, "seen": 0}
    for state in replayed.values():
        data = encode(state)
        assert native.reencode_state(data) == data, state.customer_id
        for name in filled:
            filled[name] += bool(getattr(state, name))
    # The replay covered every kind of content, not only the easy ones.
    assert all(count > 20 for count in filled.values()), filled


def _odd() -> CustomerState:
    s = new_state('c-"é\\ü\u2028/\x7f')
    s.survey = [1_700_000_000, 3.0, 4, 2.5]  # a JSON integer may come as 3.0
    s.orders = {"o-2": [5, 100, 0, 0, -(1 << 62), 0], "o-1": [4, 1, 1, 1, 19_000, 1]}
    s.seen = {"e-\t": 1, "e-a": 2}
    s.idays = {19_000: (1, 0, 0, 0, 0, 0, 0, 1), 19_002: (0, 0, 0, 0, 0, 2, 1, 2)}
    s.due, s.below_since, s.alerted, s.dedup_floor = 1 << 40, 7, True, 0
    return s


def test_odd_values_keep_their_bytes() -> None:
    data = encode(_odd())
    assert native.reencode_state(data) == data


@pytest.mark.parametrize("answer", [1e16, 1.5e300, 1.5e-7, 9.478274870593493, 0.1, 1e-5])
def test_survey_floats_keep_their_bytes(answer: float) -> None:
    """Floats the schema would refuse, but a state can hold: exponents as orjson writes
    them, and the last digit of a 17-digit float."""
    s = _odd()
    s.survey = [1, answer, 3, 4]
    data = encode(s)
    assert native.reencode_state(data) == data


def test_idays_out_of_order_are_sorted_as_python_decodes_them() -> None:
    s = _odd()
    s.idays = dict(reversed(list(s.idays.items())))  # as an old state may list them
    data = encode(s)
    assert native.reencode_state(data) == encode(decode(data))
    assert native.reencode_state(data) != data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"[1]", "not an encoded CustomerState of format 2"),
        (encode(new_state("c")).replace(b",0,0,", b',"x",0,', 1), "as_of: not an integer"),
        (b"{", "not JSON"),
    ],
)
def test_other_bytes_are_refused_naming_the_field(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        native.reencode_state(data)
