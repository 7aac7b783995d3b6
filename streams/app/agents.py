"""The grading agents: batches of input records or ticks, through the grading step, to
the broker and the table.

Each agent takes records in batches (`Stream.take_events`): up to `batch_size` records,
or what arrived within `batch_wait_seconds`. Per batch: each record through the grading
step (inputs only when they are the next of their partition, `streams.app.progress`);
then every send delivered and acknowledged; then the states and markers persisted. The
batch holds the locks of its customers throughout, so the tick agent never reads a state
an input batch is still changing.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any, cast

import faust
from prometheus_client import Counter

from streams.app import metrics
from streams.app.grading_step import GradingStep, Record
from streams.app.outbox import Producer, deliver
from streams.app.progress import Progress, marker_key, read_marker
from streams.app.states import Batch
from streams.app.table import FaustTable

Agent = Callable[[faust.StreamT[bytes]], AsyncIterator[None]]


class CustomerLocks:
    """One customer's load-grade-publish-persist at a time, across agents."""

    def __init__(self) -> None:
        self.locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.users: defaultdict[str, int] = defaultdict(int)

    @asynccontextmanager
    async def held(self, customer_ids: Iterable[str]) -> AsyncIterator[None]:
        """Hold the locks of a batch's customers until it is persisted: the batch awaits
        the broker, and another agent must not load a state meanwhile and persist an
        older one over it. Taken in sorted order, so two agents whose batches share
        customers never each hold a lock the other waits for."""
        ids = sorted(set(customer_ids))
        for customer_id in ids:
            self.users[customer_id] += 1
        taken: list[asyncio.Lock] = []
        try:
            for customer_id in ids:
                lock = self.locks[customer_id]
                await lock.acquire()
                taken.append(lock)
            yield
        finally:
            for lock in taken:
                lock.release()
            for customer_id in ids:
                self.users[customer_id] -= 1
                if not self.users[customer_id]:
                    del self.locks[customer_id], self.users[customer_id]


def record_of(event: faust.EventT[bytes]) -> Record:
    m = event.message
    return Record(m.topic, m.partition, m.offset, m.key, m.value or b"", m.timestamp)


class GradingAgents:
    """The input and tick agents of one worker, around its grading step."""

    def __init__(
        self,
        step: GradingStep,
        table: FaustTable,
        progress: Progress,
        producer: Callable[[], Producer],
        batch_size: int,
        batch_wait_seconds: float,
    ) -> None:
        self.step = step
        self.table = table
        self.progress = progress
        self.producer = producer
        self.batch_size = batch_size
        self.batch_wait_seconds = batch_wait_seconds
        self.locks = CustomerLocks()

    def inputs(self, topic: str) -> Agent:
        """The agent of an input topic."""

        async def done_of(partition: int) -> int | None:
            return self._done(marker_key(topic, partition), partition)

        self.progress.watched[topic] = done_of
        return self._agent(topic, self._on_record, metrics.EVENTS_IN.labels(topic))

    def ticks(self, topic: str) -> Agent:
        """The agent of the ticks topic."""
        return self._agent(topic, self._on_tick, metrics.TICKS_IN)

    def _agent(
        self,
        topic: str,
        handle: Callable[[faust.EventT[bytes], Batch], Any],
        counter: Counter,
    ) -> Agent:
        async def agent(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
            # take_events is on faust.Stream, not (yet) on the StreamT interface.
            batches = cast(faust.Stream[bytes], stream).take_events(
                self.batch_size, within=self.batch_wait_seconds
            )
            async for events in batches:
                counter.inc(len(events))
                metrics.BATCH_RECORDS.observe(len(events))
                await self._batch(topic, events, handle)
                yield None

        return agent

    async def _batch(
        self,
        topic: str,
        events: Sequence[faust.EventT[bytes]],
        handle: Callable[[faust.EventT[bytes], Batch], Any],
    ) -> None:
        batch = Batch()
        self.progress.busy.add(topic)
        try:
            # The customer ids a batch may touch: its records' keys (keyless: none).
            keys = {e.message.key.decode(errors="replace") for e in events if e.message.key}
            async with self.locks.held(keys):
                for event in events:
                    self.table.events[event.message.partition] = event
                    await handle(event, batch)
                self.step.finish(batch)
                await deliver(self.producer(), batch.sends)
                self.step.persist(batch)
                await self.table.flush(self.producer())
            now = time.time()
            for produced_at in batch.produced_at:
                metrics.PROCESSING_SECONDS.observe(max(0.0, now - produced_at))
        finally:
            # The watch counts a stall from here, not from the batch's start.
            self.progress.busy.discard(topic)
            self.progress.read(topic)

    async def _on_record(self, event: faust.EventT[bytes], batch: Batch) -> None:
        message = event.message
        self.progress.read(message.topic)
        marker = marker_key(message.topic, message.partition)
        done = self._done(marker, message.partition)
        if await self.progress.in_order(message.tp, message.offset, done):
            self.step.record(record_of(event), batch)
            self.progress.handled(marker, message.offset + 1)

    async def _on_tick(self, event: faust.EventT[bytes], batch: Batch) -> None:
        self.step.tick(record_of(event), batch)

    def _done(self, marker: bytes, partition: int) -> int | None:
        """The next offset to handle of an input partition: known, or its stored marker."""
        done = self.progress.done.get(marker)
        if done is None:
            stored = self.step.store.marker(marker, partition)
            if stored is not None:
                done = self.progress.done[marker] = read_marker(stored)[0]
        return done
