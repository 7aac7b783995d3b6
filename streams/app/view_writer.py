"""The Redis view, written by the worker from the grades it has just delivered.

Once a batch's sends are acknowledged (`streams.app.outbox`), the worker knows where each
of its grades landed in customer-grades. `ViewWriter.offer` queues them and a task of its
own writes them to Redis in offset order per partition (`RedisView.write`: the snapshots,
then the position reached, in one pipeline, in the view's life). Grading never waits for
Redis: a Redis outage holds back only this task, whose writes are retried forever.

The view is the compacted topic's latest grades, so whatever was not written as it came
is read back from the topic, from the view's position to where the writer goes on, by a
consumer of its own (no group, `streams.app.clients.kafka_consumer`):

- grades of a partition that arrive past the position (the queue was full while Redis
  was down and dropped them, or the tick agent's batch was acknowledged before the input
  agent's): the gap, then the grades;
- the partitions a rebalance gives this worker, up to their end (grades delivered but
  not written before a crash, or by the worker that had them);
- every partition of this worker after Redis lost its data (`ViewLost`: a new life with
  no positions, so from the start), found by a write or by the watch;
- a partition whose known end stays ahead of its position (the watch).

Why not read customer-grades back through faust as any agent does: that cost about a
sixth of the worker's CPU per event (docs/benchmarks.md, "Worker").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager
from typing import Any

import orjson
from aiokafka.structs import TopicPartition

from streams.app import metrics
from streams.app.outbox import Send, Sent
from streams.sinks.redis_view import RedisView, ViewLost

log = logging.getLogger(__name__)

# How long the watch waits for Redis (a Redis outage must not hold the watch up).
WATCH_WAIT_SECONDS = 1.0

# A consumer of the worker's Kafka, assigned nothing, for as long as the context lasts.
Reader = Callable[[], AbstractAsyncContextManager[Any]]

# What the queue holds: (partition, offset of the first grade, the grades as sent); an
# offset of None asks for the partition read up to its end.
_Item = tuple[int, int | None, list[Send]]
# What a write takes: (partition, grades, the offset after the last of them).
_Part = tuple[int, list[Send], int]


class ViewWriter:
    """Writes the grades of `topic` to `view`, in offset order per partition."""

    def __init__(
        self, view: RedisView, topic: str, reader: Reader, batch_size: int, queue_batches: int
    ) -> None:
        self.view = view
        self.topic = topic
        self.reader = reader
        self.batch_size = batch_size
        self.queue_batches = queue_batches
        self.queue: asyncio.Queue[_Item] = asyncio.Queue()
        # The view's positions (the next offset to write) as loaded from Redis (None: to
        # load), the partitions this worker grades, and the end each is known to have.
        self.positions: dict[int, int] | None = None
        self.owned: set[int] = set()
        self.ends: dict[int, int] = {}
        self.busy = False

    def offer(self, sent: Iterable[Sent]) -> None:
        """Queue the grades of a delivered batch (the queue full: read back later)."""
        for batch in sent:
            if batch.topic != self.topic:
                continue
            end = batch.last_offset() + 1
            self.ends[batch.partition] = max(self.ends.get(batch.partition, 0), end)
            if self.queue.qsize() < self.queue_batches:
                self.queue.put_nowait((batch.partition, end - batch.count, list(batch.records)))

    def assigned(self, partitions: Iterable[int]) -> None:
        """A rebalance gave this worker `partitions`: their positions are loaded again
        (another worker may have moved them) and each is read up to its end."""
        self.owned = set(partitions)
        self.positions = None
        self.sync(self.owned)

    def sync(self, partitions: Iterable[int]) -> None:
        for partition in sorted(partitions):
            self.queue.put_nowait((partition, None, []))

    def lag(self) -> int:
        """Grades of this worker's partitions known to be in the topic, not in the view
        (a position not loaded counts from the start: nothing is known to be written)."""
        positions = self.positions or {}
        return sum(max(0, self.ends.get(p, 0) - positions.get(p, 0)) for p in self.owned)

    async def run(self) -> None:
        """Write what is queued, for as long as the worker runs: all that is queued at
        once, a customer's latest grade only (while grading keeps the CPU busy, batches
        queue up, and the view needs only the newest of each)."""
        while True:
            items = [await self.queue.get()]
            while not self.queue.empty():
                items.append(self.queue.get_nowait())
            self.busy = True
            try:
                await self._write_all(_merged(items))
            finally:
                self.busy = False

    async def _write_all(self, items: list[_Item]) -> None:
        """Write `items` in order: a partition past its position is read back up to the
        item first (its end for a sync); then the grades that follow on from their
        partition's position go to Redis together, whatever their partitions: one call,
        not one per partition (a call's round trip and client machinery cost more than
        its grades)."""
        following: list[_Part] = []
        try:
            positions = await self._positions()
            for partition, first, grades in items:
                if first is None or first > positions.get(partition, 0):
                    await self._read_back(partition, positions.get(partition, 0), first)
                    if first is None:
                        continue
                at = positions.get(partition, 0)
                end = first + len(grades)
                if end > at:
                    following.append((partition, grades[max(0, at - first) :], end))
            if following:
                await self._store(following)
        except ViewLost:
            self._rebuild()  # the rest is read back from the topic
        except Exception:  # a read that failed: the watch finds what it left behind
            log.exception("redis view: writing %s failed", self.topic)

    async def watch(self) -> None:
        """Between writes: whether Redis still holds the view's life (else rebuild), and
        read back each partition whose known end is ahead of its position."""
        if self.busy or not self.queue.empty():
            return
        try:
            same = await asyncio.wait_for(self.view.same_life(), WATCH_WAIT_SECONDS)
        except ViewLost:
            same = False
        except Exception as error:
            log.debug("redis view: life not read (%s); watching later", error)
            self.view.error = self.view.error or type(error).__name__
            return
        if not same:
            self._rebuild()
            return
        positions = self.positions or {}
        self.sync(p for p in self.owned if self.ends.get(p, 0) > positions.get(p, 0))

    def _rebuild(self) -> None:
        """Redis lost the view's data: join its new life, and write every partition of
        this worker again from the topic."""
        log.warning("redis view: Redis lost the view's data; rebuilding it from %s", self.topic)
        metrics.VIEW_REBUILDS.inc()
        self.view.forget()
        self.positions = None
        self.sync(self.owned)

    async def _positions(self) -> dict[int, int]:
        if self.positions is None:
            stored = await self.view.load_positions()
            prefix = f"{self.topic}:"
            self.positions = {
                int(key[len(prefix) :]): offset
                for key, offset in stored.items()
                if key.startswith(prefix)
            }
        return self.positions

    async def _store(self, parts: list[_Part]) -> None:
        """Write the latest grade per customer of `parts`, then the position each part
        reaches."""
        positions = await self._positions()
        latest = list(
            {
                g.key if g.key is not None else object(): g
                for _, grades, _ in parts
                for g in grades
            }.values()
        )
        snapshots = [
            g.snapshot if g.snapshot is not None else orjson.loads(g.value) for g in latest
        ]
        raw = [g.value for g in latest]
        size = self.batch_size
        chunks = [slice(i, i + size) for i in range(0, len(snapshots), size)] or [slice(0, 0)]
        for n, chunk in enumerate(chunks, start=1):
            # The positions with the last chunk only: they cover every grade before it.
            reached = (
                {f"{self.topic}:{p}": end for p, _, end in parts} if n == len(chunks) else None
            )
            written = await self.view.write(snapshots[chunk], reached, raw[chunk])
            metrics.REDIS_WRITES.inc(written)
        for partition, _, end in parts:
            positions[partition] = end

    async def _read_back(self, partition: int, start: int, stop: int | None) -> None:
        """Write the grades of `partition` from offset `start` up to `stop` (None: the
        partition's end now) as read from the topic."""
        tp = TopicPartition(self.topic, partition)
        async with self.reader() as consumer:
            consumer.assign([tp])
            if stop is None:
                stop = int((await consumer.end_offsets([tp]))[tp])
                self.ends[partition] = max(self.ends.get(partition, 0), stop)
            if start >= stop:
                return
            log.info("redis view: reading %s[%d] back from %d to %d", *tp, start, stop)
            consumer.seek(tp, start)
            async for grades, reached in _records(consumer, tp, stop, self.batch_size):
                await self._store([(partition, grades, reached)])


def _merged(items: list[_Item]) -> list[_Item]:
    """`items` with the grades of a partition that follow on from one another joined."""
    merged: list[_Item] = []
    last: dict[int, int] = {}  # per partition, the index in `merged` of its last item
    for partition, first, grades in items:
        at = last.get(partition)
        if at is not None and first is not None:
            _, before, joined = merged[at]
            if before is not None and before + len(joined) == first:
                joined.extend(grades)
                continue
        last[partition] = len(merged)
        merged.append((partition, first, list(grades)))
    return merged


async def _records(
    consumer: Any, tp: TopicPartition, stop: int, batch_size: int
) -> AsyncIterator[tuple[list[Send], int]]:
    """The grades read from `tp` below `stop`, batch by batch, each with the offset after
    it (offsets compacted away, or holding no record, are passed over with the consumer's
    position)."""
    at = int(await consumer.position(tp))
    while at < stop:
        fetched = await consumer.getmany(tp, timeout_ms=1000, max_records=batch_size)
        records = [r for r in fetched.get(tp, []) if r.offset < stop and r.value is not None]
        reached = min(stop, int(await consumer.position(tp)))
        if reached > at:
            yield [Send(tp.topic, r.key, r.value) for r in records], reached
            at = reached
