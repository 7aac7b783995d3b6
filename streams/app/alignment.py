"""Event time across the input topics: each partition number's records, from every input
topic, handed to the grading step in event-time order, as Kafka Streams aligns a task's
partitions by timestamp.

Kafka orders a partition, not a set of topics, and a consumer fetches each partition at
its own pace (by bytes): reading a backlog, the sparse orders topic races weeks ahead of
the dense interactions topic in event time, and interactions read after their customer's
later orders fall below its lateness floor (`too_late`). So the worker reads its input
topics in one agent and passes every record through an `Aligner` first.

Per partition number, the aligner releases the record with the earliest event time among
the next records of each topic (ties: in the order of the topics). A record waits while
another topic of its partition number has none waiting and may have an earlier one: that
topic `lagging` (it has records not read yet). Live, every topic is caught up and nothing
waits; in a backlog the topic ahead in event time waits for the others. Each topic's own
order is kept: a record produced late stays where it is in its topic. How long a place
has held its partition back is known (`overdue`): the agent looks into a long wait
(`streams.app.input_flow`).

A record whose time cannot be read (not JSON, no occurred_at), or which lies further
ahead of the wall clock than the worker accepts (`from_the_future`), takes its topic's
previous time: it changes no state, and must not hold the others back. Faust-free; the agent
(`streams.app.agents`) supplies `lagging` and pauses topics that hold too many records.
"""

from __future__ import annotations

import heapq
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Generic, TypeVar

import orjson

from streams.core.timefmt import parse_rfc3339

T = TypeVar("T")
# (topic, partition number).
Place = tuple[str, int]


def event_time_of(value: bytes | None, latest: float = math.inf) -> int | None:
    """A record's occurred_at in epoch seconds, as the core reads it; None if unreadable
    or after `latest`: a record the worker refuses as from the future must not hold its
    topic's next records back until the other topics reach its year 9999."""
    try:
        occurred_at = orjson.loads(value or b"").get("occurred_at")
        at = parse_rfc3339(occurred_at) if isinstance(occurred_at, str) else None
    except (orjson.JSONDecodeError, AttributeError, ValueError, TypeError):
        return None
    return at if at is not None and at <= latest else None


class Aligner(Generic[T]):
    """Records held per (topic, partition), released in event-time order (the module)."""

    def __init__(self, topics: Sequence[str]) -> None:
        self.topics = tuple(topics)
        # Per place: (event time, offset, record) waiting, in offset order.
        self.held: dict[Place, deque[tuple[int, int, T]]] = {}
        # Per place: the next offset to read (after the last record pushed).
        self.received: dict[Place, int] = {}
        self.count = 0
        self._last_time: dict[Place, int] = {}
        # Per place: since when it has held the others back, having nothing waiting.
        self._waiting_since: dict[Place, float] = {}

    def push(self, topic: str, partition: int, offset: int, at: int | None, record: T) -> None:
        """Take a record read from `topic`'s `partition` (the next of that partition)."""
        place = (topic, partition)
        if at is None:
            at = self._last_time.get(place, 0)
        self._last_time[place] = at
        queue = self.held.get(place)
        if queue is None:
            queue = self.held[place] = deque()
        queue.append((at, offset, record))
        self.received[place] = offset + 1
        self._waiting_since.pop(place, None)
        self.count += 1

    def release(self, lagging: Callable[[str, int], bool], now: float) -> list[T]:
        """The records that may be handled now, per partition number in event-time order.
        `lagging(topic, partition)`: whether that partition has records not read yet;
        `now`: a monotonic clock's time (when a wait began)."""
        out: list[T] = []
        for partition in sorted({p for (_, p), queue in self.held.items() if queue}):
            self._release(partition, lagging, now, out)
        return out

    def _release(
        self, partition: int, lagging: Callable[[str, int], bool], now: float, out: list[T]
    ) -> None:
        queues = [self.held.get((topic, partition)) for topic in self.topics]
        blocking: dict[str, bool] = {}  # asked once per topic and call
        while True:
            first: deque[tuple[int, int, T]] | None = None
            for queue in queues:
                if queue and (first is None or queue[0][0] < first[0][0]):
                    first = queue
            if first is None:
                return
            for topic, queue in zip(self.topics, queues, strict=True):
                if queue:
                    continue
                blocks = blocking.get(topic)
                if blocks is None:
                    blocks = blocking[topic] = self._blocks((topic, partition), lagging, now)
                if blocks:
                    return
            out.append(first.popleft()[2])
            self.count -= 1

    def _blocks(self, place: Place, lagging: Callable[[str, int], bool], now: float) -> bool:
        """Whether an empty place holds its partition's records back (the module)."""
        if not lagging(*place):
            self._waiting_since.pop(place, None)
            return False
        self._waiting_since.setdefault(place, now)
        return True

    def overdue(self, now: float, seconds: float) -> list[Place]:
        """The places that have held their partition back for `seconds` or more."""
        return [place for place, since in self._waiting_since.items() if now - since >= seconds]

    def wait_again(self, place: Place, now: float) -> None:
        """Count a place's wait from `now` (it has been looked into)."""
        if place in self._waiting_since:
            self._waiting_since[place] = now

    def waiting(self) -> Iterator[tuple[Place, int]]:
        """(place, how many records it holds) of each place holding any."""
        return ((place, len(queue)) for place, queue in self.held.items() if queue)

    def reset(self) -> None:
        """Forget everything (after a rebalance: what was held is read again)."""
        self.held, self.received, self._last_time, self._waiting_since = {}, {}, {}, {}
        self.count = 0


def aligned(
    records: Iterable[tuple[str, int, bytes | None, Any]],
    topics: Sequence[str],
    max_ahead_seconds: float = 86_400,
) -> list[Any]:
    """The order in which a worker reading all of `records` (topic, partition, value, and
    anything) from a backlog hands them to the grading step: what replay must read to
    give the worker's outputs (tests; docs/worker.md, "Event time across topics").
    Partition numbers are independent; they are interleaved by event time, as they are
    read."""
    latest = time.time() + max_ahead_seconds
    per_partition: dict[int, Aligner[tuple[int, Any]]] = {}
    offsets: dict[Place, int] = {}
    last: dict[Place, int] = {}
    for topic, partition, value, record in records:
        place = (topic, partition)
        offset = offsets[place] = offsets.get(place, -1) + 1
        at = last[place] = event_time_of(value, latest) or last.get(place, 0)
        aligner = per_partition.get(partition)
        if aligner is None:
            aligner = per_partition[partition] = Aligner(topics)
        aligner.push(topic, partition, offset, at, (at, record))
    released = [a.release(lambda topic, p: False, 0.0) for _, a in sorted(per_partition.items())]
    return [record for _, record in heapq.merge(*released, key=lambda item: item[0])]
