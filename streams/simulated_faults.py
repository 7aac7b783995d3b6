"""The malformed records the simulator injects, broken as producers break them: cut short,
a field of the wrong type, an unknown event type, not UTF-8, not a JSON object, or a key
that disagrees with the body. A subject of its own because these are what the boundary
must refuse (each is one dead-letter code, tests/simulate counts them), apart from how
`simulate` decides which records to break.
"""

from __future__ import annotations

import random
from datetime import datetime
from typing import Final

import orjson

from streams.simulated_customers import SEVERITIES

_FAULTS: Final = ("truncated", "wrong_type", "unknown_type", "not_utf8", "not_object", "key")
_UNKNOWN_TYPES: Final = ("order_teleported", "page_scrolled", "complaint_reopened", "ORDER_PLACED")


def corrupt(
    key: bytes | None,
    value: bytes,
    rng: random.Random,
    width: int,
    n_customers: int,
    with_keys: bool,
) -> tuple[str, bytes | None, bytes]:
    """The fault's name and a broken version of a record's `key` and `value`.

    `width` and `n_customers`: how customer ids are numbered (for a key of someone else);
    `with_keys`: False when records carry no key, so the key fault cannot show.
    """
    fault = rng.choice(_FAULTS if with_keys else _FAULTS[:-1])
    if fault == "truncated":  # a producer died mid-write; any proper prefix of {...} is bad
        return fault, key, value[: rng.randrange(1, len(value) - 1)]
    if fault == "not_utf8":  # a Latin-1 encoder somewhere upstream
        cut = value.index(b'"customer_id":"') + 15
        return fault, key, value[:cut] + b"\xe9" + value[cut:]
    if fault == "not_object":
        return fault, key, b"[" + value + b"]"
    event = orjson.loads(value)
    if fault == "key":  # a producer keyed by something else (another customer's id)
        other = b"cust-%0*d" % (width, rng.randrange(n_customers + 1))
        if other == event["customer_id"].encode():
            other += b"x"
        return fault, other, value
    if fault == "unknown_type":
        event["type"] = rng.choice(_UNKNOWN_TYPES)
    elif "amount" in event:
        event["amount"] = str(event["amount"])  # "59.99": a string, not a number
    elif "severity" in event:
        event["severity"] = SEVERITIES.index(event["severity"]) + 1
    else:
        event["occurred_at"] = int(datetime.fromisoformat(event["occurred_at"]).timestamp())
    return fault, key, orjson.dumps(event)
