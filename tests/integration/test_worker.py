"""The worker against the real broker and Redis, as a subprocess, compared with replay."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.contracts import decode
from streams.core.errors import Rejection
from streams.core.policy import load_policy
from streams.produce import produce_async
from streams.replay import replay_file
from streams.simulate import SimConfig, SimRecord, generate, write_jsonl
from streams.sinks.redis_view import RedisView
from tests.conftest import TopicFactory
from tests.integration.support import free_port, subprocess_worker

INPUTS = ("orders", "complaints", "interactions")
OUTPUTS = ("tier-changes", "churn-risk", "lifecycle-changes")


@dataclass
class Deployment:
    """One worker's unique topic names, Redis prefix and environment."""

    kafka: str
    redis_url: str
    datadir: Path
    topics: dict[str, str]
    web_port: int = field(default_factory=free_port)
    prefix: str = field(default_factory=lambda: f"test-{uuid.uuid4().hex[:8]}")

    def env(self, clock: str = "event") -> dict[str, str]:
        env = {
            **os.environ,
            "GRADESTREAM_APP_ID": f"{self.prefix}-app",
            "GRADESTREAM_KAFKA_BOOTSTRAP_SERVERS": self.kafka,
            "GRADESTREAM_REDIS_URL": self.redis_url,
            "GRADESTREAM_REDIS_KEY_PREFIX": self.prefix,
            "GRADESTREAM_CLOCK": clock,
            "GRADESTREAM_DATADIR": str(self.datadir),
            "GRADESTREAM_WEB_PORT": str(self.web_port),
            "GRADESTREAM_SWEEP_INTERVAL_SECONDS": "0.5",
        }
        for topic, name in self.topics.items():
            env[f"GRADESTREAM_TOPIC_{topic.upper().replace('-', '_')}"] = name
        return env

    def worker(self, clock: str = "event") -> Any:
        argv = ["-m", "streams.cli", "worker", "--loglevel", "info"]
        return subprocess_worker(argv, self.env(clock), self.datadir / "worker.log")


@pytest.fixture(params=["three-topics"])
async def deployment(
    request: pytest.FixtureRequest,
    kafka_bootstrap: str,
    redis_url: str,
    new_topic: TopicFactory,
    tmp_path: Path,
) -> AsyncIterator[Deployment]:
    if request.param == "one-topic":
        events = await new_topic("events", partitions=4)
        topics = dict.fromkeys(INPUTS, events)
    else:
        topics = {name: await new_topic(name, partitions=4) for name in INPUTS}
    unique = uuid.uuid4().hex[:8]
    for name in (*OUTPUTS, "customer-grades", "dead-letters", "ticks"):
        topics[name] = f"test-{name}-{unique}"  # the worker declares these itself
    deployment = Deployment(kafka_bootstrap, redis_url, tmp_path / "worker", topics)
    deployment.datadir.mkdir()
    yield deployment
    client = aioredis.from_url(redis_url)
    keys = [k async for k in client.scan_iter(f"{deployment.prefix}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


def keyed(records: Iterable[SimRecord]) -> list[SimRecord]:
    """Records as a well-behaved producer sends them: keyed by customer_id.

    The simulator's key faults (keyless, mismatched) are left out here: a file has no
    keys, so replay cannot see them; test_bad_records covers them.
    """
    out = []
    for topic, key, value in records:
        try:
            body = orjson.loads(value)
            customer = body.get("customer_id") if isinstance(body, dict) else None
        except orjson.JSONDecodeError:
            customer = None
        if isinstance(customer, str):
            if key is not None and key != customer.encode():
                continue
            key = customer.encode()
        out.append(SimRecord(topic, key, value))
    return out


def replay(records: list[SimRecord], tmp: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Replay's output events and final grades for these records."""
    source = tmp / "in.jsonl"
    write_jsonl(records, source)
    out, snap, dlq = tmp / "out.jsonl", tmp / "snap.jsonl", tmp / "dlq.jsonl"
    replay_file(source, load_policy(None), out, snap, dlq)
    outputs = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    grades = {g["customer_id"]: g for g in map(orjson.loads, snap.read_bytes().splitlines())}
    return outputs, grades


async def read_topic(
    kafka: str,
    topic: str,
    until: Any,
    within: float = 120.0,
    worker: asyncio.subprocess.Process | None = None,
) -> list[dict[str, Any]]:
    """Read `topic` from the start until `until(records)` holds, for at most `within` s
    (then return what came); fail at once if `worker` dies."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(within):
            while not until(records):
                assert worker is None or worker.returncode is None, "the worker died"
                batch = await consumer.getmany(timeout_ms=500)
                for messages in batch.values():
                    records.extend(orjson.loads(m.value) for m in messages)
    except TimeoutError:
        pass
    finally:
        await consumer.stop()
    return records


def latest(grades: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The newest grade per customer, as a compacted topic keeps it."""
    out: dict[str, dict[str, Any]] = {}
    for g in grades:
        old = out.get(g["customer_id"])
        if old is None or (g["as_of"], g["seq"]) >= (old["as_of"], old["seq"]):
            out[g["customer_id"]] = g
    return out


def simulated(customers: int, days: int, seed: int) -> list[SimRecord]:
    return keyed(generate(customers, days, seed))


@pytest.mark.parametrize("deployment", ["one-topic"], indirect=True)
async def test_worker_equals_replay(deployment: Deployment, tmp_path: Path) -> None:
    """All events on one topic: each customer's events reach the worker in file order,
    so outputs and grades must equal replay's exactly (see docs/worker.md on ordering)."""
    records = simulated(customers=80, days=150, seed=11)
    expected_outputs, expected_grades = replay(records, tmp_path)
    rename = {name: deployment.topics[name] for name in INPUTS}
    await produce_async(records, deployment.kafka, rename)

    async with deployment.worker("event") as worker:
        grades = latest(
            await read_topic(
                deployment.kafka,
                deployment.topics["customer-grades"],
                lambda got: latest(got) == expected_grades,
                worker=worker,
            )
        )
        assert grades == expected_grades, mismatch(grades, expected_grades)
        outputs: list[dict[str, Any]] = []
        for name in OUTPUTS:
            want = sum(1 for o in expected_outputs if o["type"] == name_to_type(name))
            outputs += await read_topic(
                deployment.kafka,
                deployment.topics[name],
                lambda got, want=want: len({o["event_id"] for o in got}) >= want,
                within=30,
                worker=worker,
            )
        assert worker.returncode is None, (deployment.datadir / "worker.log").read_text()[-3000:]

        # Redis converges on the same grades.
        view = RedisView(aioredis.from_url(deployment.redis_url), deployment.prefix)
        try:
            async with asyncio.timeout(60):
                while True:
                    stored = {c: await view.read(c) for c in expected_grades}
                    if stored == expected_grades:
                        break
                    await asyncio.sleep(0.5)
        finally:
            await view.client.aclose()

        # The HTTP lookup answers with the current grade, 404 for a stranger.
        some_customer = sorted(expected_grades)[0]
        base = f"http://127.0.0.1:{deployment.web_port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/customers/{some_customer}") as response:
                assert response.status == 200
                assert await response.json() == expected_grades[some_customer]
            async with http.get(f"{base}/customers/nobody-{uuid.uuid4().hex}") as response:
                assert response.status == 404
            async with http.get(f"{base}/health") as response:
                assert response.status == 200
            async with http.get(f"{base}/metrics") as response:
                text = await response.text()
                assert "gradestream_events_in_total" in text

    assert grades == expected_grades, mismatch(grades, expected_grades)
    by_id = {o["event_id"]: o for o in outputs}
    assert sorted(by_id) == sorted(o["event_id"] for o in expected_outputs)
    assert all(by_id[o["event_id"]] == o for o in expected_outputs)


def name_to_type(topic: str) -> str:
    return {
        "tier-changes": "tier_changed",
        "churn-risk": "churn_risk_changed",
        "lifecycle-changes": "lifecycle_changed",
    }[topic]


def mismatch(got: dict[str, Any], want: dict[str, Any]) -> str:
    """A short account of how two grade maps differ, for a failing assertion."""
    missing = sorted(set(want) - set(got))
    differ = sorted(c for c in set(want) & set(got) if got[c] != want[c])
    lines = [f"{len(missing)} customers missing, {len(differ)} differ, of {len(want)}"]
    for c in differ[:3]:
        keys = sorted(k for k in want[c] if want[c].get(k) != got[c].get(k))
        lines += [f"{c}.{k}: worker {got[c].get(k)!r} != replay {want[c].get(k)!r}" for k in keys]
    return "\n".join(lines)


def good_and_bad(records: list[SimRecord]) -> tuple[int, Counter[str]]:
    """How many records decode as good events, and the rejection codes of the others,
    judged by the contract alone (what the dead-letter topic must show)."""
    good, bad = 0, Counter[str]()
    for topic, key, value in records:
        decoded = decode(value, topic, key)
        if isinstance(decoded, Rejection):
            bad[decoded.code] += 1
        else:
            good += 1
    return good, bad


async def test_bad_records_go_to_the_dead_letters(deployment: Deployment) -> None:
    """The simulator's faults as they reach Kafka (malformed values, keyless records, keys
    that disagree with the body) interleaved with good events: every record is accounted
    for once, as a graded event, a duplicate or a dead letter with its reason."""
    records = list(generate(100, 120, seed=5, config=SimConfig(malformed_rate=0.05)))
    _, bad = good_and_bad(records)
    assert bad["key_mismatch"] > 0
    assert sum(bad.values()) > 50
    assert any(r.key is None for r in records)
    await produce_async(records, deployment.kafka, {n: deployment.topics[n] for n in INPUTS})

    async with deployment.worker("event") as worker:
        async with asyncio.timeout(120):
            while True:
                assert worker.returncode is None, "the worker died"
                dead = await read_all(deployment.kafka, deployment.topics["dead-letters"])
                grades = await read_all(deployment.kafka, deployment.topics["customer-grades"])
                duplicates = await metric(deployment, "gradestream_duplicates_total")
                accounted = graded_events(grades) + int(duplicates) + len(dead)
                if accounted >= len(records):
                    break
                await asyncio.sleep(1)
    assert accounted == len(records)
    codes = Counter(d["rejection"]["code"] for d in dead)
    # Each contract rejection is there with its code. The core may add too_late ones:
    # a keyless record is re-sent keyed, behind the backlog, and may arrive too late.
    for code, count in bad.items():
        assert codes[code] == count, (code, codes)
    assert set(codes) - set(bad) <= {"too_late"}
    for record in dead:
        assert record["source"]["topic"] in deployment.topics.values()
        assert record["rejection"]["message"]


async def read_all(kafka: str, topic: str) -> list[dict[str, Any]]:
    """Everything in `topic` up to its current end (empty if it does not exist yet)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in partitions]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records: list[dict[str, Any]] = []
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            batch = await consumer.getmany(timeout_ms=500)
            for messages in batch.values():
                records.extend(orjson.loads(m.value) for m in messages)
        return records
    finally:
        await consumer.stop()


async def metric(deployment: Deployment, name: str) -> float:
    """A counter's value from the worker's /metrics (0 while its web server starts)."""
    url = f"http://127.0.0.1:{deployment.web_port}/metrics"
    try:
        async with aiohttp.ClientSession() as http, http.get(url) as response:
            text = await response.text()
    except aiohttp.ClientConnectionError:
        return 0.0
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def graded_events(grades: list[dict[str, Any]]) -> int:
    """Events accepted so far: the sum over customers of the newest snapshot's seq."""
    return sum(g["seq"] for g in latest(grades).values())


async def test_a_quiet_customer_is_moved_by_the_wall_clock_sweep(deployment: Deployment) -> None:
    """No event arrives after the order: only the sweep, on wall-clock time, can make
    this customer active, then silent, and raise their churn risk."""
    now = datetime.now(UTC)
    placed = (now - timedelta(days=200)).strftime("%Y-%m-%dT%H:%M:%SZ")
    customer = f"quiet-{uuid.uuid4().hex[:6]}"
    order = {
        "event_id": "e-1",
        "customer_id": customer,
        "occurred_at": placed,
        "type": "order_placed",
        "order_id": "o-1",
        "amount": 120.0,
        "currency": "USD",
    }
    record = SimRecord("orders", customer.encode(), orjson.dumps(order))
    await produce_async([record], deployment.kafka, {"orders": deployment.topics["orders"]})
    async with deployment.worker("wall") as worker:
        changes = await read_topic(
            deployment.kafka,
            deployment.topics["lifecycle-changes"],
            lambda got: any(c["stage"] == "silent" for c in got),
            within=90,
            worker=worker,
        )
    stages = [(c["previous_stage"], c["stage"], c["cause"]["kind"]) for c in changes]
    assert stages[0] == ("prospect", "new", "event")
    assert ("new", "active", "inactivity") in stages
    assert ("active", "silent", "inactivity") in stages
