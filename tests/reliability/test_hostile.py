"""Hostile input: bad messages made by mutating good ones, interleaved with good events.
The worker never dies; every bad message is a dead letter with the code its mutation
calls for; every good one is graded (or counted as a duplicate)."""

from __future__ import annotations

import asyncio
import base64
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from streams.contracts import decode
from streams.core.errors import Rejection
from streams.produce import produce_async
from streams.simulate import SimConfig, SimRecord, generate
from tests.integration.support import (
    INPUTS,
    Deployment,
    free_texts,
    graded_events,
    keyed,
    leaks,
    metric,
    read_all,
)
from tests.reliability.conftest import SECRET_MARKER

pytestmark = pytest.mark.integration

Event = dict[str, Any]
# A mutation: (good event, its bytes, its key, rng) -> (bad bytes, bad key).
Mutation = Callable[[Event, bytes, bytes, random.Random], tuple[bytes, bytes | None]]


def _json(event: Event) -> bytes:
    return orjson.dumps(event)


def _with(**fields: Any) -> Mutation:
    # A fresh event_id: with the original's, the core would take it for a duplicate.
    return lambda e, v, k, r: (_json({**e, "event_id": e["event_id"] + "-m", **fields}), k)


def _nested(depth: int) -> Any:
    node: Any = 1
    for _ in range(depth):
        node = {"n": node}
    return node


def _drop(field: str) -> Mutation:
    return lambda e, v, k, r: (_json({f: x for f, x in e.items() if f != field}), k)


# name -> (mutation, expected rejection code, a word the message must contain).
MUTATIONS: dict[str, tuple[Mutation, str, str]] = {
    "truncated": (lambda e, v, k, r: (v[: r.randrange(1, len(v) - 1)], k), "invalid_json", ""),
    "not_utf8": (lambda e, v, k, r: (v[:20] + b"\xff\xfe" + v[20:], k), "invalid_json", "UTF-8"),
    "empty": (lambda e, v, k, r: (b"", k), "invalid_json", ""),
    "trailing_bytes": (lambda e, v, k, r: (v + b"}", k), "invalid_json", ""),
    "nan": (lambda e, v, k, r: (v[:-1] + b',"score":NaN}', k), "invalid_json", ""),
    "infinity": (lambda e, v, k, r: (v[:-1] + b',"score":-Infinity}', k), "invalid_json", ""),
    "huge": (_with(padding="x" * 70_000), "too_large", "65536"),
    "deep": (_with(extra=_nested(40)), "too_deep", "32"),
    "very_deep": (
        lambda e, v, k, r: (b'{"a":' + b"[" * 5000 + b"]" * 5000 + b"}", k),
        "too_deep",
        "",
    ),
    "array": (lambda e, v, k, r: (b"[" + v + b"]", k), "not_an_object", "array"),
    "number": (lambda e, v, k, r: (b"42", k), "not_an_object", "number"),
    "null": (lambda e, v, k, r: (b"null", k), "not_an_object", "null"),
    "unknown_type": (_with(type="order_teleported"), "unknown_type", "order_teleported"),
    "type_not_string": (_with(type=7), "schema_violation", "/type"),
    "no_event_id": (_drop("event_id"), "schema_violation", "/event_id"),
    "long_event_id": (_with(event_id="e" * 129), "schema_violation", "/event_id"),
    "customer_id_number": (_with(customer_id=12345), "schema_violation", "/customer_id"),
    "control_char_id": (_with(event_id="bad\u0007id"), "schema_violation", "/event_id"),
    "time_without_offset": (
        _with(occurred_at="2024-03-01T10:15:00"),
        "schema_violation",
        "/occurred_at",
    ),
    "time_as_number": (_with(occurred_at=1709288100), "schema_violation", "/occurred_at"),
    "far_past": (_with(occurred_at="0001-01-01T00:00:00Z"), "too_late", "0001"),
    "far_future": (_with(occurred_at="9999-12-31T23:59:59Z"), "from_the_future", "9999"),
    "key_mismatch": (lambda e, v, k, r: (v, k + b"-other"), "key_mismatch", "customer_id"),
}
ORDER_MUTATIONS: dict[str, tuple[Mutation, str, str]] = {
    "amount_string": (
        lambda e, v, k, r: (_json({**e, "amount": str(e["amount"])}), k),
        "schema_violation",
        "/amount",
    ),
    "negative_amount": (_with(amount=-5.0), "schema_violation", "/amount"),
    "absurd_amount": (_with(amount=1e15), "schema_violation", "/amount"),
    "bad_currency_code": (_with(currency="usd"), "schema_violation", "/currency"),
    "unknown_currency": (_with(currency="XTS"), "unknown_currency", "XTS"),
}


@dataclass(frozen=True)
class Bad:
    kind: str
    code: str
    word: str
    record: SimRecord


def hostile(customers: int, days: int, bad: int, seed: int) -> tuple[list[SimRecord], list[Bad]]:
    """Good events (no simulator faults but duplicates and late ones) with `bad` mutated
    copies interleaved, each right after the good event it was made from."""
    rng = random.Random(seed)
    good = keyed(generate(customers, days, seed, config=SimConfig(malformed_rate=0.0)))
    assert all(not isinstance(decode(v, None, k), Rejection) for _, k, v in good)
    rate = bad / len(good)
    out: list[SimRecord] = []
    bads: list[Bad] = []
    for record in good:
        out.append(record)
        if rng.random() >= rate:
            continue
        event = orjson.loads(record.value)
        kinds = dict(MUTATIONS)
        if event["type"].startswith("order_"):
            kinds |= ORDER_MUTATIONS
        kind = rng.choice(sorted(kinds))
        mutate, code, word = kinds[kind]
        assert record.key is not None
        value, key = mutate(event, record.value, record.key, rng)
        mutated = SimRecord(record.topic, key, value)
        out.append(mutated)
        bads.append(Bad(kind, code, word, mutated))
    return out, bads


@dataclass(frozen=True)
class Size:
    customers: int
    days: int
    bad: int
    seed: int


@pytest.mark.parametrize(
    "size",
    [
        pytest.param(Size(100, 365, 1_000, 31), id="short"),
        pytest.param(
            Size(1000, 365, 10_600, 32),
            id="long",
            marks=[pytest.mark.soak, pytest.mark.timeout(1800)],
        ),
    ],
)
async def test_hostile_input_is_dead_lettered_precisely(
    size: Size, deployment: Deployment, figures: dict[str, Any]
) -> None:
    records, bads = hostile(size.customers, size.days, size.bad, size.seed)
    await produce_async(
        records,
        deployment.kafka,
        {n: deployment.topics[n] for n in INPUTS},
        producer_options={"max_request_size": 2**20},
    )
    async with deployment.worker("event") as worker:
        async with asyncio.timeout(600 if size.bad > 5000 else 180):
            while True:
                assert worker.returncode is None, "the worker died"
                dead = await read_all(deployment.kafka, deployment.topics["dead-letters"])
                grades = await read_all(deployment.kafka, deployment.topics["customer-grades"])
                duplicates = int(await metric(deployment, "gradestream_duplicates_total"))
                accounted = graded_events(grades) + duplicates + len(dead)
                if accounted >= len(records):
                    break
                await asyncio.sleep(2)
        assert worker.returncode is None
    assert accounted == len(records)

    expected = Counter((b.record.value, b.record.key, b.code) for b in bads)
    got = Counter(
        (
            base64.b64decode(d["value_b64"]),
            None if d["key_b64"] is None else base64.b64decode(d["key_b64"]),
            d["rejection"]["code"],
        )
        for d in dead
    )
    codes_of: dict[bytes, list[str]] = {}
    for value, _, code in got.elements():
        codes_of.setdefault(value, []).append(code)
    wrong = Counter(
        (b.kind, b.code, ",".join(codes_of.get(b.record.value, ["none"])))
        for b in bads
        if got[(b.record.value, b.record.key, b.code)]
        < expected[(b.record.value, b.record.key, b.code)]
    )
    assert not wrong, f"bad records without the expected dead letter (kind, want, got): {wrong}"
    assert sum(got.values()) == len(bads), "a good record became a dead letter"
    messages = {
        (base64.b64decode(d["value_b64"]), d["rejection"]["code"]): d["rejection"]["message"]
        for d in dead
    }
    for b in bads:
        message = messages[(b.record.value, b.code)]
        assert b.word in message, (b.kind, message)
    figures.update(
        records=len(records),
        bad=len(bads),
        good=len(records) - len(bads),
        duplicates=duplicates,
        graded=graded_events(grades),
        by_kind=dict(Counter(b.kind for b in bads)),
        by_code=dict(Counter(d["rejection"]["code"] for d in dead)),
    )
    assert not await leaks(deployment, {SECRET_MARKER, *free_texts(records)})
