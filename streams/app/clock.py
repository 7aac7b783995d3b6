"""The worker's clock and its sweeps: what "now" is per partition, and who is due.

Under the wall clock now is wall-clock time. Under the event clock time is kept per
partition, as Kafka Streams keeps stream time per task: a partition's now is the highest
event time read from it (Kafka orders a partition, not the topic, so a partition read
ahead must not move the others' customers; replay --partitions keeps the same time).

Time moves grades without events: the sweep takes the customers whose due time has come
from an in-memory index per partition and sends each a keyed tick, which the agent that
owns the customer applies, so that every state change happens inside stream iteration
(faust keeps the RocksDB store and the changelog together only there).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from itertools import islice
from typing import Any, Literal

from streams.app import metrics
from streams.core import future
from streams.core.errors import Rejection
from streams.schedule import DueIndex

# Sends a tick: (customer id, partition, now).
SendTick = Callable[[str, int, int], Awaitable[Any]]


class Clock:
    """Stream time and due customers per partition number (a customer's records, state
    and ticks share one)."""

    def __init__(
        self,
        kind: Literal["wall", "event"],
        max_ahead_seconds: int,
        ahead_of_stream_seconds: int | None = None,
    ) -> None:
        self.event = kind == "event"
        self.max_ahead_seconds = max_ahead_seconds
        # How far after its partition's stream time, under the event clock (None: no
        # bound): the policy's (`streams.core.future.ahead_of_stream_seconds`).
        self.future = (
            future.FutureCheck(ahead_of_stream_seconds) if ahead_of_stream_seconds else None
        )
        self.partition_time: dict[int, int] = {}
        # Per input (topic, partition): the latest event time read there. A marker keeps
        # its own topic's, not the partition's stream time: that one also holds the times
        # of other topics' records still in a batch, which a crash may undo.
        self.read_times: dict[tuple[str, int], int] = {}
        self.dues: dict[int, DueIndex] = {}

    def from_the_future(
        self, partition: int, event_time: int, occurred_at: str
    ) -> Rejection | None:
        """Why an event is from the future, if it is (None: it is not): beyond
        `max_ahead_seconds` after the wall clock; under the event clock also after its
        partition's stream time, by the rule replay keeps too (`streams.core.future`).
        One such event would move its customer (and, under the event clock, its
        partition) to its time, and later events would come too late; it moves nothing."""
        if event_time > time.time() + self.max_ahead_seconds:
            return future.rejection(occurred_at, self.max_ahead_seconds, "the wall clock")
        ahead = self.future
        stream_time = self.partition_time.get(partition)
        if self.event and ahead and ahead.refuses(partition, event_time, stream_time):
            return future.rejection(occurred_at, ahead.ahead_seconds)
        return None

    def read(self, topic: str, partition: int, event_time: int) -> int | None:
        """Note an event time read from `topic`'s `partition`; return the partition's
        stream time (the event clock's "now" there), or None under the wall clock."""
        now = max(self.partition_time.get(partition, event_time), event_time)
        self.partition_time[partition] = now
        read = (topic, partition)
        self.read_times[read] = max(self.read_times.get(read, event_time), event_time)
        return now if self.event else None

    def resume(self, partition: int, at: int) -> None:
        """Under the event clock, let a partition's time be at least `at` (after a restart
        or a rebalance: where handling stopped)."""
        if self.event:
            self.partition_time[partition] = max(self.partition_time.get(partition, 0), at)
            if self.future is not None:
                self.future.forget(partition)

    def now(self, partition: int) -> int | None:
        """Now for the customers of `partition` (None: no event read there yet, under the
        event clock)."""
        if self.event:
            return self.partition_time.get(partition)
        return int(time.time())

    def due(self, partition: int) -> DueIndex:
        index = self.dues.get(partition)
        if index is None:
            index = self.dues[partition] = DueIndex()
        return index

    def take_due(self, partitions: Iterable[int], limit: int) -> list[tuple[str, int, int]]:
        """Up to `limit` customers of `partitions` whose due time has come, taken out of
        the index: (customer id, partition, now). One whose step fails is put back with
        `due(partition).set`."""
        taken: list[tuple[str, int, int]] = []
        for partition in partitions:
            index, now = self.dues.get(partition), self.now(partition)
            if index is None or now is None:
                continue
            for customer_id in islice(index.pop_due(now), limit - len(taken)):
                taken.append((customer_id, partition, now))
            if len(taken) >= limit:
                break
        return taken

    async def sweep(self, send_tick: SendTick) -> None:
        """Send a tick to every customer whose due time has come."""
        started = time.perf_counter()
        due = self.take_due(list(self.dues), self.due_count())
        for n, (customer_id, partition, now) in enumerate(due):
            try:
                await send_tick(customer_id, partition, now)
            except Exception:
                for customer_id, partition, now in due[n:]:
                    self.due(partition).set(customer_id, now)  # the next sweep tries again
                raise
        metrics.SWEEP_CUSTOMERS.observe(len(due))
        metrics.SWEEP_SECONDS.observe(time.perf_counter() - started)
        metrics.DUE_CUSTOMERS.set(self.due_count())

    def due_count(self) -> int:
        """Customers in the due index."""
        return sum(len(index) for index in self.dues.values())
