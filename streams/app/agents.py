"""The grading agents: batches of input records or ticks, through the grading step, to
the broker and the table.

Each agent takes records in batches (`Stream.take_events`): up to `batch_size` records,
or what arrived within `batch_wait_seconds`. One agent reads every input topic: a record
that is the next of its partition (`streams.app.progress`) goes to the aligner
(`streams.app.input_flow`), which hands back, in event-time order across the topics,
those that may be graded now. Per batch: each record through the grading step; then every
send delivered and acknowledged; then the states and markers persisted. The batch holds
the locks of its customers throughout, so the tick agent never reads a state an input
batch is still changing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter as Tally
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import cast

import faust
from prometheus_client import Counter

from streams.app import metrics
from streams.app.grading_step import GradingStep, Record
from streams.app.input_flow import FlowControl, InputFlow, Pause, paced
from streams.app.outbox import Producer, Sent, deliver
from streams.app.progress import Progress, marker_key, read_marker
from streams.app.states import Batch
from streams.app.table import FaustTable

Agent = Callable[[faust.StreamT[bytes]], AsyncIterator[None]]

log = logging.getLogger(__name__)


class CustomerLocks:
    """One customer's load-grade-publish-persist at a time, across agents."""

    def __init__(self) -> None:
        # Per customer held, the future its holder resolves on letting go.
        self.holders: dict[str, asyncio.Future[None]] = {}

    @asynccontextmanager
    async def held(self, customer_ids: Iterable[str]) -> AsyncIterator[None]:
        """Hold the locks of a batch's customers until it is persisted: the batch awaits
        the broker, and another agent must not load a state meanwhile and persist an
        older one over it. Taken in sorted order, so two agents whose batches share
        customers never each hold a lock the other waits for. A customer no one holds
        is taken without an await: a batch's hundreds of customers are nearly always
        free, and an `asyncio.Lock` each cost an await and a lock object per customer."""
        released: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        taken: list[str] = []
        try:
            for customer_id in sorted(set(customer_ids)):
                while (holder := self.holders.get(customer_id)) is not None:
                    await asyncio.shield(holder)
                self.holders[customer_id] = released
                taken.append(customer_id)
            yield
        finally:
            for customer_id in taken:
                del self.holders[customer_id]
            released.set_result(None)


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
        align_wait_seconds: float = 1.0,
        align_hold: int = 4000,
        consumer: Callable[[], FlowControl] | None = None,
        delivered: Callable[[list[Sent]], None] | None = None,
        pause: Pause | None = None,
    ) -> None:
        self.step = step
        self.table = table
        self.progress = progress
        self.producer = producer
        self.batch_size = batch_size
        self.batch_wait_seconds = batch_wait_seconds
        self.align_wait_seconds = align_wait_seconds
        self.align_hold = align_hold
        self.consumer = consumer
        self.delivered = delivered  # told of each batch's sends once acknowledged
        self.pause = pause
        self.locks = CustomerLocks()
        self.flow: InputFlow | None = None

    def inputs(self, *topics: str) -> Agent:
        """The agent of the input topics: one for all, so that a partition number's records
        of every topic are graded in event-time order (`streams.app.alignment`)."""
        flow = self.flow = InputFlow(
            topics,
            self.align_wait_seconds,
            self.align_hold,
            self.consumer,
            self._done_of,
            self.step.clock.max_ahead_seconds,
            self.pause,
        )
        for topic in topics:
            # The watch seeks back to the next offset expected, past the records held.
            async def next_read(partition: int, topic: str = topic) -> int | None:
                return flow.next_read(topic, partition)

            self.progress.watched[topic] = next_read

        async def agent(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
            batches = cast(faust.Stream[bytes], stream).take_events(
                self.batch_size, within=self.batch_wait_seconds
            )
            # Woken when idle, to end a wait on a silent partition (`paced`).
            idle: Sequence[faust.EventT[bytes]] = ()
            async for events in paced(batches, self.align_wait_seconds / 2, idle):
                if events:
                    metrics.BATCH_RECORDS.observe(len(events))
                    for topic, count in Tally(e.message.topic for e in events).items():
                        metrics.EVENTS_IN.labels(topic).inc(count)
                if events or flow.aligner.count:
                    await self._inputs_batch(topics, flow, events)
                yield None

        return agent

    def reset(self) -> None:
        """After a rebalance (with `Progress.reset`): what was held is read again."""
        if self.flow is not None:
            self.flow.reset()

    async def _inputs_batch(
        self, topics: Sequence[str], flow: InputFlow, events: Sequence[faust.EventT[bytes]]
    ) -> None:
        """Take each record that is the next of its partition, then grade what the
        aligner releases, as one batch."""
        self.progress.busy.update(topics)
        try:
            for event in events:
                m = event.message
                self.progress.read(m.topic)
                expected = flow.next_read(*m.tp)
                if expected == m.offset and not self.progress.rewound:
                    flow.push(event)  # the next of its partition, as nearly all are
                elif await self.progress.in_order(m.tp, m.offset, expected):
                    flow.push(event)
            await flow.look_into_waits(self._rewind)
            released = await flow.release()
            if released:
                await self._grade(released, self._on_record, self._due(released))
        finally:
            self.progress.busy.difference_update(topics)
            if events:  # the watch counts a stall from the last records taken
                for topic in topics:
                    self.progress.read(topic)

    def ticks(self, topic: str) -> Agent:
        """The agent of the ticks topic."""
        return self._agent(topic, self._on_tick, metrics.TICKS_IN)

    def _agent(
        self,
        topic: str,
        handle: Callable[[faust.EventT[bytes], Batch], None],
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
        handle: Callable[[faust.EventT[bytes], Batch], None],
    ) -> None:
        self.progress.busy.add(topic)
        try:
            await self._grade(events, handle)
        finally:
            # The watch counts a stall from here, not from the batch's start.
            self.progress.busy.discard(topic)
            self.progress.read(topic)

    def _due(self, records: Sequence[faust.EventT[bytes]]) -> list[tuple[str, int, int]]:
        """The customers of the records' partitions whose due time has come (up to a
        batch's size), to step in the records' batch: what the sweep's ticks would do,
        without their round trip through the broker."""
        partitions = {e.message.partition for e in records}
        due = self.step.clock.take_due(partitions, self.batch_size)
        metrics.DUE_IN_BATCH.inc(len(due))
        return due

    async def _grade(
        self,
        events: Sequence[faust.EventT[bytes]],
        handle: Callable[[faust.EventT[bytes], Batch], None],
        due: Sequence[tuple[str, int, int]] = (),
    ) -> None:
        """The `due` customers' time steps (customer id, partition, now) then each record
        through `handle`, then deliver the sends, then persist."""
        batch = self.step.store.batch()
        # The customer ids a batch may touch: its records' keys (keyless: none).
        keys = {e.message.key.decode(errors="replace") for e in events if e.message.key}
        try:
            async with self.locks.held(keys.union(customer_id for customer_id, _, _ in due)):
                for event in events:
                    self.table.events[event.message.partition] = event
                for customer_id, partition, at in due:
                    self.step.time_step(customer_id, partition, at, batch)
                for event in events:
                    handle(event, batch)
                self.step.finish(batch)
                sent = await deliver(self.producer(), batch.sends)
                if self.delivered is not None:
                    self.delivered(sent)
                self.step.persist(batch)
                await self.table.flush(self.producer())
        except BaseException:
            # Back in the index for the next batch or sweep; unless partitions moved
            # meanwhile: their index is rebuilt from the table then, and only theirs.
            if batch.generation == self.step.store.generation:
                for customer_id, partition, at in due:
                    self.step.clock.due(partition).set(customer_id, at)
            raise
        now = time.time()
        for produced_at in batch.produced_at:
            metrics.PROCESSING_SECONDS.observe(max(0.0, now - produced_at))

    def _on_record(self, event: faust.EventT[bytes], batch: Batch) -> None:
        """An input record released by the aligner (the next of its partition)."""
        message = event.message
        self.step.record(record_of(event), batch)
        self.progress.handled(marker_key(message.topic, message.partition), message.offset + 1)

    def _on_tick(self, event: faust.EventT[bytes], batch: Batch) -> None:
        self.step.tick(record_of(event), batch)

    async def _rewind(self, tp: faust.types.TP, done: int, position: int) -> None:
        """Seek back a partition the aligner waits on, whose records up to `position` the
        consumer has read but the agent never took. Not `Progress.rewind`: records still
        on their way may come first, and a gap they show is sought back as any other."""
        metrics.REWINDS.inc()
        log.warning("%s: read to %d, nothing taken from %d: seeking back", tp, position, done)
        await self.progress.consumer().seek_wait({tp: done})

    def _done_of(self, topic: str, partition: int) -> int | None:
        return self._done(marker_key(topic, partition), partition)

    def _done(self, marker: bytes, partition: int) -> int | None:
        """The next offset to handle of an input partition: known, or its stored marker."""
        done = self.progress.done.get(marker)
        if done is None:
            stored = self.step.store.marker(marker, partition)
            if stored is not None:
                done = self.progress.done[marker] = read_marker(stored)[0]
        return done
