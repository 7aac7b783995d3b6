"""The input agent's records through the `Aligner` (`streams.app.alignment`), against
faust's consumer: which partitions still have records to read, looking into a long wait
for one, pausing the partitions that hold too many, and waking the agent when a wait may
end without a record.

A long wait (`wait_seconds` without a record from a lagging partition) has three causes.
The consumer has not fetched the records yet: wait on. It has read them but the worker
never got them: faust drops the rest of a fetched batch around a rebalance (seen at
start-up, for a partition whose records were all there already), so nothing arrives
until a later record shows the gap; the worker seeks the partition back to the next
offset it expects. Or, sought back and fetched to its end, again nothing comes: its last
offsets hold no records (transaction markers), and it holds nothing back until it grows.
Nothing is skipped: a record that comes after all is graded, in the order it comes.

A partition holding too many records is paused in aiokafka itself, not with faust's
`pause_partitions`: faust drops what it has fetched of a partition it pauses but not
handed over yet, and reads on past it (a gap, sought back); aiokafka keeps its position
at the first record it has not returned.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

import faust
from faust.types import TP

from streams.app import metrics
from streams.app.alignment import Aligner, Place, event_time_of

T = TypeVar("T")

log = logging.getLogger(__name__)


class FlowControl(Protocol):
    """What alignment needs of faust's consumer."""

    def highwater(self, tp: TP) -> int | None: ...

    async def position(self, tp: TP) -> int | None: ...

    async def earliest_offsets(self, *partitions: TP) -> Mapping[TP, int]: ...


# Pauses (True) or resumes (False) the fetching of partitions, losing nothing fetched
# (`streams.app.clients.pause_fetching`).
Pause = Callable[[Iterable[TP], bool], Awaitable[None]]


# Seeks a partition back: (partition, next offset expected, the consumer's position).
Rewind = Callable[[TP, int, int], Awaitable[None]]


class InputFlow:
    """The aligner of one worker's input records, and its flow control.

    `done(topic, partition)`: the partition's next offset to handle as stored (its
    progress marker), for partitions the aligner has read nothing from yet. `hold`: a
    partition holding more records than this is paused until it holds half as many, so
    a topic far ahead in event time costs at most that, plus one fetch, in memory.
    """

    def __init__(
        self,
        topics: Sequence[str],
        wait_seconds: float,
        hold: int,
        consumer: Callable[[], FlowControl] | None,
        done: Callable[[str, int], int | None],
        max_ahead_seconds: float = 86_400,
        pause: Pause | None = None,
    ) -> None:
        self.aligner: Aligner[faust.EventT[bytes]] = Aligner(topics)
        self.wait_seconds = wait_seconds
        self.max_ahead_seconds = max_ahead_seconds
        self.hold = hold
        self.consumer = consumer
        self.done = done
        self.pause = pause
        self.paused: set[Place] = set()
        # Per place: the next offset expected when it was sought back for a long wait; and
        # the end of those found to hold no records there (they hold nothing back).
        self.sought: dict[Place, int] = {}
        self.silent: dict[Place, int] = {}

    def next_read(self, topic: str, partition: int) -> int | None:
        """The next offset expected from a partition: after the last record taken, or the
        next to handle (None: not known)."""
        read = self.aligner.received.get((topic, partition))
        return read if read is not None else self.done(topic, partition)

    def push(self, event: faust.EventT[bytes]) -> None:
        m = event.message
        at = event_time_of(m.value, time.time() + self.max_ahead_seconds)
        self.aligner.push(m.topic, m.partition, m.offset, at, event)
        self.sought.pop((m.topic, m.partition), None)
        self.silent.pop((m.topic, m.partition), None)

    async def release(self) -> list[faust.EventT[bytes]]:
        """The records to grade now, in order; then pause or resume what holds too many."""
        released = self.aligner.release(self.lagging, time.monotonic())
        await self._pace()
        metrics.ALIGN_HELD.set(self.aligner.count)
        return released

    def lagging(self, topic: str, partition: int) -> bool:
        """Whether the partition has records this worker has not read: its end, as the
        consumer last saw it, is beyond the next offset expected. Unknown end (nothing
        fetched yet): it may have some. Not this worker's (or no consumer): no."""
        if self.consumer is None:
            return False
        try:
            end = self.consumer().highwater(TP(topic, partition))
        except Exception:  # not assigned here, or the consumer is not running
            return False
        if end is None:
            return True
        read = self.next_read(topic, partition)
        return (
            end > (read if read is not None else 0) and self.silent.get((topic, partition)) != end
        )

    async def look_into_waits(self, rewind: Rewind) -> None:
        """For each partition that has held its partition number back for `wait_seconds`:
        wait on, seek it back, or find it silent (the module)."""
        if self.consumer is None:
            return
        now = time.monotonic()
        consumer = self.consumer()
        for place in self.aligner.overdue(now, self.wait_seconds):
            tp = TP(*place)
            read = self.next_read(*place)
            if read is None:  # never handled here: from its first offset, as the consumer
                read = (await consumer.earliest_offsets(tp))[tp]
            position = await consumer.position(tp)
            self.aligner.wait_again(place, now)
            if position is None or position <= read:
                continue  # not fetched yet
            end = consumer.highwater(tp) or position
            if self.sought.get(place) == read and position >= end:
                # Sought back, fetched to the end, and still nothing: had there been
                # records, they would have come (records merely queued behind others
                # leave the position short of the end, and are sought again).
                self.silent[place] = end
                log.info("%s: no records in [%d, %d) after a seek back", tp, read, position)
                continue
            self.sought[place] = read
            await rewind(tp, read, position)

    async def _pace(self) -> None:
        if self.pause is None:
            return
        holding = dict(self.aligner.waiting())
        crowded = {place for place, n in holding.items() if n > self.hold} - self.paused
        relieved = {place for place in self.paused if holding.get(place, 0) <= self.hold // 2}
        if crowded:
            await self.pause([TP(*place) for place in crowded], True)
            self.paused |= crowded
        if relieved:
            await self.pause([TP(*place) for place in relieved], False)
            self.paused -= relieved

    def reset(self) -> None:
        """After a rebalance: held records are read again from the markers; nothing stays
        paused (a new assignment starts unpaused)."""
        self.aligner.reset()
        self.sought, self.silent, self.paused = {}, {}, set()
        metrics.ALIGN_HELD.set(0)


async def paced(batches: AsyncIterator[T], seconds: float, idle: T) -> AsyncIterator[T]:
    """`batches`, and `idle` whenever none came for `seconds`: the aligner's wait for a
    silent partition ends without a record arriving (faust's `take_events` yields only
    records). The pending batch is kept across wake-ups, never cancelled but at the end."""
    pending: asyncio.Future[Any] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(batches))
            done, _ = await asyncio.wait({pending}, timeout=seconds)
            if not done:
                yield idle
                continue
            finished, pending = pending, None
            try:
                batch = finished.result()
            except StopAsyncIteration:
                return
            yield batch
    finally:
        if pending is not None:
            pending.cancel()
