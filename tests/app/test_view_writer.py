"""The Redis view's writer without Kafka or Redis: what it writes, in which order, and
what it reads back from the topic (the integration tests run it against both)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import orjson
from aiokafka.structs import TopicPartition

from streams.app.outbox import Send, Sent
from streams.app.view_writer import ViewWriter
from streams.sinks.redis_view import ViewLost

TOPIC = "grades"


def grade(customer_id: str, seq: int) -> bytes:
    return orjson.dumps({"customer_id": customer_id, "seq": seq})


class FakeView:
    """RedisView as the writer uses it: snapshots by customer, positions, a life."""

    def __init__(self) -> None:
        self.grades: dict[str, int] = {}
        self.positions: dict[str, int] = {}
        self.writes: list[tuple[list[str], dict[str, int] | None]] = []
        self.lost = False
        self.error: str | None = None
        self.life: str | None = None

    async def write(
        self, snapshots: list[dict[str, Any]], positions: dict[str, int] | None, raw: Any
    ) -> int:
        if self.lost:
            self.lost = False
            raise ViewLost("lost")
        for snapshot in snapshots:
            self.grades[snapshot["customer_id"]] = snapshot["seq"]
        self.positions.update(positions or {})
        self.writes.append(([s["customer_id"] for s in snapshots], positions))
        return len(snapshots)

    async def load_positions(self) -> dict[str, int]:
        self.life = "life"
        return dict(self.positions)

    async def same_life(self) -> bool:
        return True

    def forget(self) -> None:
        self.life = None


class FakeConsumer:
    """A partition's records, read as aiokafka's consumer reads them."""

    def __init__(self, log: list[tuple[bytes, bytes]]) -> None:
        self.log = log
        self.at = 0

    def assign(self, tps: list[TopicPartition]) -> None:
        pass

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: len(self.log) for tp in tps}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.at = offset

    async def position(self, tp: TopicPartition) -> int:
        return self.at

    async def getmany(self, tp: TopicPartition, timeout_ms: int, max_records: int) -> Any:
        records = [
            SimpleNamespace(offset=offset, key=key, value=value)
            for offset, (key, value) in enumerate(self.log)
            if offset >= self.at
        ][:max_records]
        self.at += len(records)
        return {tp: records}


class Topic:
    """The grades topic's partition 0: what was published, and the reads of it."""

    def __init__(self) -> None:
        self.log: list[tuple[bytes, bytes]] = []
        self.reads = 0

    def publish(self, *grades: bytes) -> Sent:
        first = len(self.log)
        records = [Send(TOPIC, orjson.loads(g)["customer_id"].encode(), g, 0) for g in grades]
        self.log += [(r.key or b"", r.value) for r in records]
        ack = asyncio.get_running_loop().create_future()
        ack.set_result(SimpleNamespace(offset=first))
        return Sent(TOPIC, 0, records, ack)

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[FakeConsumer]:
        self.reads += 1
        yield FakeConsumer(self.log)


async def settle(writer: ViewWriter) -> None:
    """Let the writer's task write what is queued."""
    for _ in range(50):
        await asyncio.sleep(0)
        if writer.queue.empty() and not writer.busy:
            return


async def started(view: FakeView, topic: Topic, queue_batches: int = 10) -> ViewWriter:
    writer = ViewWriter(view, TOPIC, topic.reader, 500, queue_batches)  # type: ignore[arg-type]
    writer.owned = {0}
    asyncio.get_running_loop().create_task(writer.run())
    return writer


async def test_delivered_grades_are_written_with_the_position_they_reach() -> None:
    view, topic = FakeView(), Topic()
    writer = await started(view, topic)
    writer.offer([topic.publish(grade("a", 1), grade("b", 1))])
    await settle(writer)
    writer.offer([topic.publish(grade("a", 2))])
    await settle(writer)
    assert view.grades == {"a": 2, "b": 1}
    assert view.positions == {"grades:0": 3}
    assert topic.reads == 0  # nothing read back: each batch followed the last
    assert writer.lag() == 0


async def test_batches_queued_together_write_a_customer_once() -> None:
    view, topic = FakeView(), Topic()
    writer = await started(view, topic)
    writer.offer([topic.publish(grade("a", 1), grade("b", 1))])
    writer.offer([topic.publish(grade("a", 2), grade("c", 1))])
    await settle(writer)
    assert view.writes == [(["a", "b", "c"], {"grades:0": 4})]
    assert view.grades == {"a": 2, "b": 1, "c": 1}


async def test_grades_past_the_position_come_after_the_gap_read_back() -> None:
    """The queue was full (Redis down): the batches it dropped are read from the topic."""
    view, topic = FakeView(), Topic()
    writer = await started(view, topic, queue_batches=0)
    writer.offer([topic.publish(grade("a", 1))])
    writer.offer([topic.publish(grade("b", 1))])
    await settle(writer)
    assert view.writes == []  # dropped, nothing queued
    assert writer.lag() == 2
    writer.queue_batches = 10
    writer.offer([topic.publish(grade("c", 1))])
    await settle(writer)
    assert topic.reads == 1
    assert view.grades == {"a": 1, "b": 1, "c": 1}
    assert view.positions == {"grades:0": 3}


async def test_the_watch_reads_back_a_partition_left_behind() -> None:
    view, topic = FakeView(), Topic()
    writer = await started(view, topic, queue_batches=0)
    writer.offer([topic.publish(grade("a", 1))])
    await writer.watch()
    await settle(writer)
    assert view.grades == {"a": 1}
    assert writer.lag() == 0


async def test_a_view_lost_is_rebuilt_from_the_start_of_the_topic() -> None:
    view, topic = FakeView(), Topic()
    writer = await started(view, topic)
    writer.offer([topic.publish(grade("a", 1))])
    await settle(writer)
    view.grades, view.positions, view.lost = {}, {}, True  # emptied: the next write finds out
    writer.offer([topic.publish(grade("b", 1))])
    await settle(writer)
    await settle(writer)
    assert view.grades == {"a": 1, "b": 1}
    assert view.positions == {"grades:0": 2}


async def test_assigned_partitions_are_read_up_to_their_end() -> None:
    """Grades published before this worker had the partition (or before a crash)."""
    view, topic = FakeView(), Topic()
    topic.publish(grade("a", 1), grade("b", 1))
    writer = await started(view, topic)
    writer.assigned([0])
    await settle(writer)
    assert view.grades == {"a": 1, "b": 1}
    assert view.positions == {"grades:0": 2}


async def test_partitions_queued_together_are_written_in_one_call() -> None:
    view, topic = FakeView(), Topic()
    writer = await started(view, topic)
    writer.owned = {0, 1}
    ack = asyncio.get_running_loop().create_future()
    ack.set_result(SimpleNamespace(offset=0))
    other = Sent(TOPIC, 1, [Send(TOPIC, b"b", grade("b", 1), 1)], ack)
    writer.offer([topic.publish(grade("a", 1)), other])
    await settle(writer)
    assert view.writes == [(["a", "b"], {"grades:0": 1, "grades:1": 1})]
    assert topic.reads == 0
