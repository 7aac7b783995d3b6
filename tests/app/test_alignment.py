"""Event time across input topics: the aligner's order, its waits, and the flow control
around it (`streams.app.alignment`, `streams.app.input_flow`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import Any

import orjson
from faust.types import TP

from streams.app.alignment import Aligner, aligned, event_time_of
from streams.app.input_flow import InputFlow, paced

TOPICS = ("orders", "complaints", "interactions")


def never(topic: str, partition: int) -> bool:
    return False


def test_a_partition_number_is_released_in_event_time_order_across_topics() -> None:
    aligner: Aligner[str] = Aligner(TOPICS)
    for offset, (t, name) in enumerate([(10, "o10"), (40, "o40"), (90, "o90")]):
        aligner.push("orders", 0, offset, t, name)
    for offset, (t, name) in enumerate([(5, "i5"), (40, "i40"), (60, "i60")]):
        aligner.push("interactions", 0, offset, t, name)
    aligner.push("interactions", 1, 0, 1, "other partition")
    # Equal times: the order of the topics decides (orders before interactions).
    assert aligner.release(never, 0.0) == [
        "i5", "o10", "o40", "i40", "i60", "o90", "other partition",
    ]  # fmt: skip
    assert aligner.count == 0


def test_a_record_waits_for_a_lagging_topic_until_it_catches_up() -> None:
    aligner: Aligner[str] = Aligner(TOPICS)
    aligner.push("orders", 0, 0, 100, "o100")
    assert aligner.release(lambda topic, p: topic == "interactions", 0.0) == []
    aligner.push("interactions", 0, 0, 50, "i50")
    # interactions may have more before 100: still waiting, behind its released i50.
    assert aligner.release(lambda topic, p: topic == "interactions", 0.1) == ["i50"]
    aligner.push("interactions", 0, 1, 150, "i150")
    # o100 goes; then orders is empty and may have more before 150: i150 waits.
    assert aligner.release(lambda topic, p: topic != "complaints", 0.2) == ["o100"]
    assert aligner.count == 1
    assert aligner.release(never, 0.3) == ["i150"]


def test_the_aligner_knows_how_long_a_place_has_held_its_partition_back() -> None:
    aligner: Aligner[str] = Aligner(TOPICS)
    aligner.push("orders", 0, 0, 100, "o100")
    lagging = lambda topic, p: topic == "complaints"  # noqa: E731
    assert aligner.release(lagging, 10.0) == []
    assert aligner.overdue(10.5, 1.0) == []
    assert aligner.release(lagging, 11.0) == []  # still waiting: no time limit here
    assert aligner.overdue(11.0, 1.0) == [("complaints", 0)]
    aligner.wait_again(("complaints", 0), 11.0)
    assert aligner.overdue(11.5, 1.0) == []
    aligner.push("complaints", 0, 0, 120, "c120")  # it delivers: no longer waited on
    assert aligner.release(lagging, 12.0) == ["o100", "c120"]
    assert aligner.overdue(20.0, 1.0) == []  # nothing waits: nothing is held back


def test_each_topic_keeps_its_own_order_and_an_unreadable_record_its_predecessor_time() -> None:
    aligner: Aligner[str] = Aligner(TOPICS)
    aligner.push("orders", 0, 0, 100, "o100")
    aligner.push("orders", 0, 1, 20, "o20 (late)")
    aligner.push("orders", 0, 2, None, "not json")
    aligner.push("interactions", 0, 0, 50, "i50")
    aligner.push("interactions", 0, 1, 120, "i120")
    assert aligner.release(never, 0.0) == ["i50", "o100", "o20 (late)", "not json", "i120"]


def test_aligned_gives_the_order_a_worker_grades_a_backlog_in() -> None:
    def record(topic: str, t: int | None) -> tuple[str, int, bytes, str]:
        value = b"{" if t is None else orjson.dumps({"occurred_at": f"2024-01-01T00:00:{t:02d}Z"})
        return topic, 0, value, f"{topic[0]}{t}"

    records = [record("orders", 30), record("interactions", 10), record("orders", 40)]
    records += [record("interactions", None), record("complaints", 30)]
    assert aligned(records, TOPICS) == ["i10", "iNone", "o30", "c30", "o40"]


def test_event_time_of_reads_occurred_at_as_the_core_does() -> None:
    assert event_time_of(b'{"occurred_at": "2024-05-01T09:00:00+02:00"}') == 1714546800
    # From the future (refused by the worker): no time, so it holds nothing back.
    assert event_time_of(b'{"occurred_at": "9999-01-01T00:00:00Z"}', 2e9) is None
    for value in (None, b"", b"[1]", b'{"occurred_at": 5}', b'{"occurred_at": "soon"}'):
        assert event_time_of(value) is None


class FakeConsumer:
    def __init__(self, ends: dict[TP, int | None]) -> None:
        self.ends = ends
        self.positions: dict[TP, int] = {}
        self.paused: set[TP] = set()

    async def position(self, tp: TP) -> int | None:
        return self.positions.get(tp)

    async def earliest_offsets(self, *partitions: TP) -> dict[TP, int]:
        return dict.fromkeys(partitions, 0)

    def highwater(self, tp: TP) -> int | None:
        if tp not in self.ends:
            raise AssertionError("Partition is not assigned")
        return self.ends[tp]

    async def pause(self, tps: Iterable[TP], paused: bool) -> None:
        if paused:
            self.paused |= set(tps)
        else:
            self.paused -= set(tps)


class Message:
    def __init__(self, topic: str, partition: int, offset: int, value: bytes) -> None:
        self.topic, self.partition, self.offset, self.value = topic, partition, offset, value


class Event:
    def __init__(self, topic: str, offset: int, second: int) -> None:
        value = orjson.dumps({"occurred_at": f"2024-01-01T00:00:{second:02d}Z"})
        self.message = Message(topic, 0, offset, value)


async def test_input_flow_knows_what_lags_and_pauses_a_partition_holding_too_many() -> None:
    consumer = FakeConsumer({TP("orders", 0): 5, TP("interactions", 0): 3})
    done = {("interactions", 0): 1}
    flow = InputFlow(
        ("orders", "interactions"),
        1.0,
        2,
        lambda: consumer,
        lambda t, p: done.get((t, p)),
        pause=consumer.pause,
    )
    assert flow.lagging("interactions", 0)  # next to handle 1, end 3
    assert not flow.lagging("complaints", 0)  # not assigned here
    for offset in range(3):
        flow.push(Event("orders", offset, 10 + offset))  # type: ignore[arg-type]
    assert flow.next_read("orders", 0) == 3
    assert await flow.release() == []  # interactions lags
    assert consumer.paused == {TP("orders", 0)}  # 3 held, more than 2
    flow.push(Event("interactions", 1, 11))  # type: ignore[arg-type]
    flow.push(Event("interactions", 2, 30))  # type: ignore[arg-type]
    released = [(e.message.topic[0], e.message.offset) for e in await flow.release()]
    # o10, o11 (a tie: orders first), i11, o12; i30 waits for orders, which lags.
    assert released == [("o", 0), ("o", 1), ("i", 1), ("o", 2)]
    assert consumer.paused == set()
    flow.reset()
    assert flow.aligner.count == 0
    assert flow.next_read("interactions", 0) == 1


async def test_a_long_wait_is_looked_into_sought_back_once_then_found_silent() -> None:
    """complaints/0 lags (end 3, next expected 0) and holds orders/0 back: while nothing is
    fetched, wait on; read but never taken (faust dropped a fetched batch), seek back;
    sought back and still nothing, its end holds no records: it holds nothing back."""
    consumer = FakeConsumer({TP("orders", 0): 9, TP("complaints", 0): 3})
    # Never handled here (no marker): from the partition's first offset.
    flow = InputFlow(("orders", "complaints"), 0.0, 100, lambda: consumer, lambda t, p: None)
    sought: list[tuple[TP, int, int]] = []

    async def rewind(tp: TP, done: int, position: int) -> None:
        sought.append((tp, done, position))

    flow.push(Event("orders", 0, 10))  # type: ignore[arg-type]
    assert await flow.release() == []
    consumer.positions[TP("complaints", 0)] = 0
    await flow.look_into_waits(rewind)
    assert sought == []  # not fetched yet
    consumer.positions[TP("complaints", 0)] = 3
    await flow.look_into_waits(rewind)
    assert sought == [(TP("complaints", 0), 0, 3)]
    assert await flow.release() == []
    consumer.ends[TP("complaints", 0)] = 5  # grown, and its position short of the end:
    await flow.look_into_waits(rewind)  # what is read may still be on its way; again
    assert sought[1:] == [(TP("complaints", 0), 0, 3)]
    consumer.positions[TP("complaints", 0)] = 5
    await flow.look_into_waits(rewind)  # sought back, fetched to the end, nothing: silent
    assert len(sought) == 2
    assert [e.message.offset for e in await flow.release()] == [0]
    consumer.ends[TP("complaints", 0)] = 6  # it grows: it may hold an earlier record
    assert flow.lagging("complaints", 0)


async def test_paced_wakes_the_agent_when_no_batch_comes() -> None:
    gate = asyncio.Event()

    async def batches() -> AsyncIterator[list[int]]:
        yield [1]
        await gate.wait()
        yield [2]

    got: list[Any] = []
    async for batch in paced(batches(), 0.01, []):
        got.append(batch)
        if len(got) == 3:
            gate.set()
    assert got[:3] == [[1], [], []]
    assert got[-1] == [2]
