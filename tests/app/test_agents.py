"""The grading agents in Faust's test context: no broker, a memory table, a fake producer.

What the agents add to the grading step: batches from the stream, the table through
Faust (its current-record rule), progress markers, delivery before persisting.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import faust
import orjson
import pytest

from streams.app.agents import CustomerLocks, GradingAgents
from streams.app.clock import Clock
from streams.app.grading_step import GradingStep, Routes
from streams.app.progress import Progress, marker_key, read_marker
from streams.app.states import StateStore, unframe
from streams.app.table import FaustTable
from streams.core.policy import load_policy
from tests.core.builders import DAY, T0, order

ROUTES = Routes(
    carries={"orders": ("orders",)},
    outputs={"tier_changed": "tc", "churn_risk_changed": "cr", "lifecycle_changed": "lc"},
    grades="grades",
    dead_letters="dlq",
)


class FakeBatch:
    def __init__(self) -> None:
        self.records: list[tuple[bytes | None, bytes]] = []

    def append(self, *, key: bytes | None, value: bytes, timestamp: float | None) -> object:
        self.records.append((key, value))
        return object()

    def close(self) -> None:
        pass


class FakeProducer:
    """aiokafka's producer as the outbox uses it: batches kept, acknowledged at once."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes]] = []

    def create_batch(self) -> FakeBatch:
        return FakeBatch()

    async def send_batch(self, batch: FakeBatch, topic: str, *, partition: int) -> Any:
        self.sent += [(topic, key, value) for key, value in batch.records]
        acked = asyncio.get_running_loop().create_future()
        acked.set_result(SimpleNamespace(offset=len(self.sent) - len(batch.records)))
        return acked

    async def partitions_for(self, topic: str) -> set[int]:
        return {0}

    def topics(self) -> list[str]:
        return [topic for topic, _, _ in self.sent]


@dataclass
class App:
    app: faust.App
    table: Any
    producer: FakeProducer
    orders: Any
    ticks: Any


@pytest.fixture
async def app() -> AsyncIterator[App]:
    app = faust.App("agents-test", store="memory://", key_serializer="raw", value_serializer="raw")
    app.loop = asyncio.get_running_loop()  # faust binds to a loop of its own otherwise
    table = app.Table("customers", partitions=1, key_type=bytes, value_type=bytes)
    orders_topic = app.topic("orders", partitions=1)
    ticks_topic = app.topic("ticks", partitions=1)
    app.finalize()
    producer = FakeProducer()
    faust_table = FaustTable(table)
    # The event clock: the events are of 2024, and under the wall clock every customer
    # would be due at once.
    step = GradingStep(load_policy(), Clock("event", 86_400), StateStore(faust_table), ROUTES)
    agents = GradingAgents(
        step, faust_table, Progress(lambda: app.consumer, 5.0, 3), lambda: producer, 10, 0.01
    )
    orders = app.agent(orders_topic, name="grade-orders")(agents.inputs("orders"))
    ticks = app.agent(ticks_topic, name="ticks")(agents.ticks("ticks"))
    yield App(app, table, producer, orders, ticks)
    # The stream made faust build its Kafka consumer, whose thread (never started here)
    # owns an event loop of its own: closed, or it warns when collected.
    consumer_thread = getattr(app.consumer, "_thread", None)
    if consumer_thread is not None:
        consumer_thread.thread_loop.close()


async def test_the_input_agent_grades_publishes_then_persists(app: App) -> None:
    body = order("e1", T0, 120.0)
    async with app.orders.test_context() as agent:
        await agent.put(orjson.dumps(body), key=b"cust-1")
        assert app.producer.topics() == ["lc", "grades"]
        applied, _ = unframe(app.table[b"cust-1"])
        assert applied == {"orders": 1}
        assert read_marker(app.table[marker_key("orders", 0)])[0] == 1

        await agent.put(orjson.dumps(body), key=b"cust-1")  # a duplicate: nothing to send
        await agent.put(b"{broken", key=b"cust-1")
        assert app.producer.topics() == ["lc", "grades", "dlq"]
        letter = orjson.loads(app.producer.sent[-1][2])
        assert letter["source"] == {"topic": "orders", "partition": 0, "offset": 2}
        assert read_marker(app.table[marker_key("orders", 0)])[0] == 3


async def test_the_tick_agent_lets_time_pass(app: App) -> None:
    async with app.orders.test_context() as agent:
        await agent.put(orjson.dumps(order("e1", T0, 120.0)), key=b"cust-1")
    async with app.ticks.test_context() as agent:
        await agent.put(str(T0 + 40 * DAY).encode(), key=b"cust-1")
    change = orjson.loads(app.producer.sent[-2][2])
    assert (change["stage"], change["cause"]["kind"]) == ("active", "inactivity")
    assert app.producer.topics()[-1] == "grades"


async def test_an_input_batch_lets_time_pass_for_the_due_customers_of_its_partition(
    app: App,
) -> None:
    """No tick needed: a batch of the partition steps its customers due by then (at the
    partition's stream time as the batch begins)."""
    async with app.orders.test_context() as agent:
        await agent.put(orjson.dumps(order("e1", T0, 120.0)), key=b"cust-1")
        await agent.put(orjson.dumps(order("e2", T0 + 40 * DAY, 50.0, cid="c2")), key=b"c2")
        assert [key for topic, key, _ in app.producer.sent if topic == "lc"] == [b"cust-1", b"c2"]
        await agent.put(orjson.dumps(order("e3", T0 + 41 * DAY, 50.0, cid="c2")), key=b"c2")
    lc = [orjson.loads(value) for topic, key, value in app.producer.sent if topic == "lc"]
    assert [(c["customer_id"], c["stage"], c["cause"]["kind"]) for c in lc][2:] == [
        ("cust-1", "active", "inactivity")
    ]
    assert "ticks" not in app.producer.topics()


async def test_customer_locks_hold_a_shared_customer_until_the_holder_lets_go() -> None:
    locks = CustomerLocks()
    order_of: list[str] = []
    first_in = asyncio.Event()
    let_go = asyncio.Event()

    async def first() -> None:
        async with locks.held(["c-1", "c-2"]):
            order_of.append("first in")
            first_in.set()
            await let_go.wait()
            order_of.append("first out")

    async def second() -> None:
        await first_in.wait()
        async with locks.held(["c-3", "c-2"]):
            order_of.append("second in")

    async def other() -> None:
        await first_in.wait()
        async with locks.held(["c-4"]):
            order_of.append("other in")

    tasks = [asyncio.create_task(f()) for f in (first, second, other)]
    await first_in.wait()
    for _ in range(5):
        await asyncio.sleep(0)
    # A customer held makes the second wait; one not held does not wait.
    assert order_of == ["first in", "other in"]
    let_go.set()
    await asyncio.gather(*tasks)
    assert order_of == ["first in", "other in", "first out", "second in"]
    assert locks.holders == {}


async def test_customer_locks_are_let_go_when_the_batch_fails() -> None:
    locks = CustomerLocks()
    with pytest.raises(RuntimeError):
        async with locks.held(["c-1"]):
            raise RuntimeError("delivery failed")
    assert locks.holders == {}
    async with asyncio.timeout(1):
        async with locks.held(["c-1"]):
            pass
