"""The simulator is reproducible, realistic enough to exercise every rule, and honest
about the faults it injects."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.contracts import INPUT_TOPICS, TOPIC_OF_TYPE, Decoded, decode
from streams.core.errors import Rejection
from streams.simulate import DEFAULT_START, SimConfig, SimRecord, generate, write_jsonl

CUSTOMERS = 2000
DAYS = 365
SEED = 11


@pytest.fixture(scope="module")
def run() -> tuple[list[SimRecord], dict[str, int]]:
    stats: dict[str, int] = {}
    return list(generate(CUSTOMERS, DAYS, SEED, stats=stats)), stats


@pytest.fixture(scope="module")
def decoded(run: tuple[list[SimRecord], dict[str, int]]) -> list[Decoded | Rejection]:
    return [decode(r.value, r.topic, r.key) for r in run[0]]


def test_same_seed_same_bytes() -> None:
    first = list(generate(200, 60, 5))
    assert first == list(generate(200, 60, 5))
    assert len(first) > 1000


def _digest(records: Iterable[SimRecord]) -> str:
    h = hashlib.sha256()
    for topic, key, value in records:
        h.update(b"%s\0%s\0%s\n" % (topic.encode(), b"-" if key is None else b"k" + key, value))
    return h.hexdigest()


def test_a_seed_pins_the_exact_records() -> None:
    # Every record's topic, key and bytes, in order, and the stats, as this seed has always
    # given them: a change to the generator that moves a single draw fails here.
    stats: dict[str, int] = {}
    assert _digest(generate(300, 90, 5, stats=stats)) == (
        "d7bab2f0a6a7fc074d05614819dc6f10d6f206b7b72bfd3781668dc864bf6f60"
    )
    assert stats == {
        "sent": 3007,
        "duplicate": 31,
        "late": 61,
        "malformed": 16,
        "malformed:key": 3,
        "malformed:not_object": 4,
        "malformed:not_utf8": 2,
        "malformed:truncated": 3,
        "malformed:unknown_type": 2,
        "malformed:wrong_type": 2,
        "no_key": 35,
    }
    assert _digest(generate(300, 90, 5, config=SimConfig(keys=False))) == (
        "d08dd71a61bd41e9cc3199546b68a782e050ba1ff431ed981cc8818e21736ba7"
    )


def test_different_seed_differs() -> None:
    assert list(generate(200, 60, 5)) != list(generate(200, 60, 6))


def test_start_moves_every_timestamp_and_nothing_else() -> None:
    later = DEFAULT_START + timedelta(days=10)
    a = list(generate(50, 30, 1))
    b = list(generate(50, 30, 1, start=later))
    assert len(a) == len(b)
    assert [r.topic for r in a] == [r.topic for r in b]


def test_records_are_well_formed(run: tuple[list[SimRecord], dict[str, int]]) -> None:
    for record in run[0]:
        assert record.topic in INPUT_TOPICS
        assert b"\n" not in record.value
        assert record.key is None or record.key.startswith(b"cust-")


def test_every_good_event_passes_the_boundary(
    run: tuple[list[SimRecord], dict[str, int]], decoded: list[Decoded | Rejection]
) -> None:
    records, stats = run
    rejected = [(r, d) for r, d in zip(records, decoded, strict=True) if isinstance(d, Rejection)]
    # Each injected fault is caught, and nothing else is: the good events are all good.
    assert len(rejected) == stats["malformed"]
    codes = Counter(d.code for _, d in rejected)
    assert set(codes) == {
        "invalid_json",
        "not_an_object",
        "unknown_type",
        "schema_violation",
        "key_mismatch",
    }
    for record, result in zip(records, decoded, strict=True):
        if isinstance(result, Decoded):
            assert result.topic == record.topic
            assert result.rekeyed == (record.key is None)


def test_fault_fractions_roughly_hold(
    run: tuple[list[SimRecord], dict[str, int]], decoded: list[Decoded | Rejection]
) -> None:
    records, stats = run
    total = len(records)
    assert stats["sent"] == total
    cfg = SimConfig()
    assert stats["malformed"] / total == pytest.approx(cfg.malformed_rate, rel=0.3)
    assert stats["late"] / total == pytest.approx(cfg.late_rate, rel=0.2)
    assert stats["no_key"] / total == pytest.approx(cfg.missing_key_rate, rel=0.2)
    # Duplicates counted from the data: a good event whose id was seen before.
    good = [(d.key, d.event["event_id"]) for d in decoded if isinstance(d, Decoded)]
    repeats = len(good) - len(set(good))
    assert repeats == stats["duplicate"]
    assert repeats / total == pytest.approx(cfg.duplicate_rate, rel=0.2)
    # Late ones really are late: sent after events that occurred hours after them.
    newest = DEFAULT_START - timedelta(days=1)
    behind = 0
    for result in decoded:
        if isinstance(result, Decoded):
            at = datetime.fromisoformat(result.event["occurred_at"])
            if at < newest - timedelta(hours=1):
                behind += 1
            newest = max(newest, at)
    assert behind > 0.3 * stats["late"]


def test_events_span_the_days_asked(decoded: list[Decoded | Rejection]) -> None:
    times = [
        datetime.fromisoformat(d.event["occurred_at"]) for d in decoded if isinstance(d, Decoded)
    ]
    end = DEFAULT_START + timedelta(days=DAYS)
    assert min(times) >= DEFAULT_START
    assert max(times) < end
    assert min(times) < DEFAULT_START + timedelta(days=1)
    assert max(times) > end - timedelta(days=1)
    by_month = Counter((t.astimezone(UTC).month) for t in times)
    assert len(by_month) == 12


def test_the_mix_exercises_every_rule(decoded: list[Decoded | Rejection]) -> None:
    events = [d.event for d in decoded if isinstance(d, Decoded)]
    types = Counter(e["type"] for e in events)
    assert set(types) == set(TOPIC_OF_TYPE), "every event type appears"
    assert types["order_placed"] > 10 * types["order_refunded"] > 0
    assert types["complaint_opened"] >= types["complaint_resolved"] > types["complaint_escalated"]
    assert {e["currency"] for e in events if e["type"] == "order_placed"} == {"USD", "EUR", "GBP"}
    assert any("text" in e for e in events if e["type"] == "complaint_opened")
    surveys = [e for e in events if e["type"] == "survey_response"]
    for score in ("nps", "csat", "ces"):
        assert any(score in e for e in surveys)
    assert any(e["occurred_at"].endswith("+01:00") for e in events)
    # The tier ladder is reached: one order >= 3000, and year spend >= 50k and >= 80k.
    seen: set[str] = set()
    spend: Counter[str] = Counter()
    big_orders = 0
    for e in events:
        if e["type"] == "order_placed" and e["currency"] == "USD" and e["event_id"] not in seen:
            seen.add(e["event_id"])
            spend[e["customer_id"]] += e["amount"]
            big_orders += e["amount"] >= 3000
    assert big_orders > 0
    assert sum(50_000 <= v < 80_000 for v in spend.values()) > 0
    assert sum(v >= 80_000 for v in spend.values()) > 0
    # Heterogeneous: most customers order a little, a few a lot; some never.
    orders = Counter(e["customer_id"] for e in events if e["type"] == "order_placed")
    counts = sorted(orders.values())
    assert counts[len(counts) // 2] <= 4 < counts[-1] // 5
    assert len(orders) < 0.9 * CUSTOMERS


def test_lapsed_customers_stop_ordering(decoded: list[Decoded | Rejection]) -> None:
    last: dict[str, datetime] = {}
    for d in decoded:
        if isinstance(d, Decoded) and d.event["type"] == "order_placed":
            last[d.event["customer_id"]] = datetime.fromisoformat(d.event["occurred_at"])
    # Some customers with a history go quiet for the last quarter.
    quiet = [c for c, t in last.items() if t < DEFAULT_START + timedelta(days=DAYS - 90)]
    assert len(quiet) > 0.1 * len(last)


def test_without_keys_for_files() -> None:
    stats: dict[str, int] = {}
    records = list(generate(300, 60, 3, config=SimConfig(keys=False), stats=stats))
    assert all(r.key is None for r in records)
    assert "malformed:key" not in stats
    rejected = sum(isinstance(decode(r.value), Rejection) for r in records)
    assert rejected == stats["malformed"]


def test_no_faults_when_rates_are_zero() -> None:
    quiet = SimConfig(malformed_rate=0, duplicate_rate=0, late_rate=0, missing_key_rate=0)
    records = list(generate(200, 30, 2, config=quiet))
    assert all(isinstance(decode(r.value, r.topic, r.key), Decoded) for r in records)
    assert len({r.value for r in records}) == len(records)


def test_stats_are_complete_when_stopped_early() -> None:
    stats: dict[str, int] = {}
    records = list(itertools.islice(generate(200, 30, 2, stats=stats), 500))
    assert stats["sent"] == len(records) == 500


@pytest.mark.parametrize(
    "bad",
    [
        {"malformed_rate": -0.1},
        {"late_rate": 1.5},
        {"malformed_rate": 0.5, "duplicate_rate": 0.6},
        {"orders_per_year": float("nan")},
    ],
)
def test_config_is_checked(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="SimConfig"):
        dataclasses.replace(SimConfig(), **bad)


def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="timezone"):
        generate(1, 1, 1, start=datetime(2024, 1, 1))  # noqa: DTZ001 (the point of the test)
    with pytest.raises(ValueError, match=">= 0"):
        generate(-1, 1, 1)
    assert list(generate(0, 10, 1)) == []
    assert list(generate(10, 0, 1)) == []


def test_write_jsonl_writes_one_value_per_line(tmp_path: Path) -> None:
    records = list(generate(100, 30, 4))
    path = tmp_path / "events.jsonl"
    counts = write_jsonl(iter(records), path)
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b""  # newline-terminated
    assert lines[:-1] == [r.value for r in records]
    assert counts["lines"] == len(records)
    assert counts["bytes"] == path.stat().st_size
    assert sum(counts[t] for t in INPUT_TOPICS) == len(records)


def test_write_jsonl_empty(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    assert write_jsonl([], path)["lines"] == 0
    assert path.read_bytes() == b""


def test_values_are_compact_json_objects(run: tuple[list[SimRecord], dict[str, int]]) -> None:
    good = next(r for r in run[0] if r.value.startswith(b"{") and r.value.endswith(b"}"))
    assert orjson.dumps(orjson.loads(good.value)) == good.value
