"""A customer's table value keeps the input offsets applied to its state with the state."""

from __future__ import annotations

from streams.app.states import frame, unframe
from streams.core.engine import new_state
from streams.core.state import decode, encode


def test_offsets_and_state_round_trip() -> None:
    state = new_state('cust-"\n\x00-odd')  # escaped by orjson: no raw newline in the head
    encoded = encode(state)
    applied = {"orders": 12, "gradestream-interactions": 40_000_000_000}
    value = frame(applied, encoded)
    assert unframe(value) == (applied, encoded)
    assert decode(unframe(value)[1]) == state


def test_a_value_written_before_offsets_were_kept_has_none() -> None:
    encoded = encode(new_state("cust-1"))
    assert unframe(encoded) == ({}, encoded)
    assert unframe(frame({}, encoded)) == ({}, encoded)
