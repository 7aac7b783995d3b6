"""The native RFC 3339 fast paths give what `streams.core.timefmt` gives, and decline
(None) exactly where the Python core leaves its fast path."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

import streams._native as native
from streams.core import timefmt

# Whole seconds from year 1 to 9999 and beyond both ends.
_ts = st.integers(-62_135_596_800 - 10**6, 253_402_300_799 + 10**6)


@settings(max_examples=3000, deadline=None)
@given(_ts)
def test_format(ts: int) -> None:
    got = native.format_rfc3339(ts)
    if got is None:
        year = int(timefmt.format_rfc3339(ts)[:-16].lstrip("0") or "0")
        assert not 1000 <= year <= 9999, ts
    else:
        assert got == timefmt.format_rfc3339(ts)


def _shapes() -> st.SearchStrategy[str]:
    """Texts near the fast path's shape: real instants with offsets, and mangled ones."""
    digits = st.text("0123456789", min_size=2, max_size=2)
    fields = st.tuples(
        st.text("0123456789", min_size=4, max_size=4), digits, digits, digits, digits, digits
    )
    offset = st.one_of(
        st.just("Z"),
        st.tuples(st.sampled_from("+-"), digits, digits).map(lambda t: f"{t[0]}{t[1]}:{t[2]}"),
        st.text(max_size=7),
    )
    built = st.tuples(fields, offset).map(lambda t: "{}-{}-{}T{}:{}:{}".format(*t[0]) + t[1])
    return st.one_of(built, st.text(max_size=26))


@settings(max_examples=5000, deadline=None)
@given(_shapes())
def test_parse(text: str) -> None:
    got = native.parse_whole_seconds(text)
    assert got == timefmt._parse_whole_seconds(text), text
