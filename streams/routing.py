"""Which replay job grades a line: the customer a history record names, read cheaply.

Each job of `gradestream replay --jobs N` (streams/replay_jobs.py) reads every line of
the file to find its own, so reading a line's customer is a per-line cost of every job,
and it must agree exactly with what the boundary (`contracts.decode`) later reads, or a
customer's events would be graded by two jobs. Compiled with mypyc (setup.py).
"""

from __future__ import annotations

from typing import Any, Final

from streams.contracts import parse

_KEY: Final = b'"customer_id"'


def customer_of(raw: bytes) -> str | None:
    r"""The customer_id a record's bytes name (None: none, or not JSON), as `parse` reads it.

    Each replay job reads every line to find its own, so this is its per-line cost. Most
    lines are flat objects in orjson's spelling, where the id can be read from the bytes
    exactly: with no backslash (no escapes), no nested container (no `[`, no `{` but the
    first byte) and one `"customer_id"` followed by `:"`, that `"customer_id"` is the
    object's own key (an unescaped quote after `customer_id` ends a string, so it cannot
    sit inside a value) and its value runs to the next quote. Any other line is parsed.
    What the bytes of an invalid line name does not matter: its refusal depends on no
    state, so any one job may write it.

    >>> customer_of(b'{"event_id":"e","customer_id":"c-1","type":"page_view"}')
    'c-1'
    >>> customer_of(b'{"customer_id" : "c\\u002d1", "items": []}')
    'c-1'
    >>> customer_of(b'not json') is None
    True
    """
    at = raw.find(_KEY)
    if (
        at > 0
        and raw.startswith(b':"', at + 13)
        and raw.find(b"\\") < 0
        and raw.find(b"[") < 0
        and raw.find(b"{", 1) < 0
        and raw.find(_KEY, at + 13) < 0
    ):
        end = raw.find(b'"', at + 15)
        if end > 0:
            try:
                return raw[at + 15 : end].decode()
            except UnicodeDecodeError:
                return None
    return customer_in(parse(raw))


def customer_in(parsed: Any) -> str | None:
    """The customer_id of a parsed value (None: none, or not an object)."""
    if type(parsed) is dict:
        customer_id = parsed.get("customer_id")
        if type(customer_id) is str:
            return customer_id
    return None
