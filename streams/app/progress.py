"""Per-partition progress: each record handled once and in offset order, whatever Kafka
delivers, for the input agents.

Kafka's committed offsets are not what the worker trusts: faust drops the rest of a
fetched batch when a rebalance cuts in, reads on from where the fetch had got to, and may
commit past the dropped records. So the worker keeps its own next offset to handle per
partition (`done`): in the table, the progress markers, written with the states.

- A record below it was handled before (re-delivered from a commit that lagged): skipped.
- A record above it means records in between were never handled: seek back to it and
  skip what had been read past. When a record up to the first one read ahead comes next
  after the seek, nothing lay in between (a transaction marker, compaction) and we go on.
- The watch (`Progress.watch`) catches what a record cannot show: a partition committed
  past unhandled records with no later record, or a seek undone by faust's own seek to
  the committed offsets during a rebalance.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

import orjson
from aiokafka.structs import TopicPartition

from streams.app import metrics

log = logging.getLogger(__name__)

# Table keys of the inputs' progress markers (no customer id starts with a control
# character: the schemas forbid them).
MARKER_PREFIX = "\x00done:"
_MARKER_PREFIX = MARKER_PREFIX.encode()


# Cached: asked for once or twice per record, of a few partitions.
@functools.lru_cache(maxsize=4096)
def marker_key(topic: str, partition: int) -> bytes:
    """The table key of the progress marker of an input partition."""
    return f"{MARKER_PREFIX}{topic}:{partition}".encode()


def is_marker(key: bytes) -> bool:
    return key.startswith(_MARKER_PREFIX)


def marker_place(key: bytes) -> tuple[str, int]:
    """The (topic, partition) a marker key names."""
    topic, number = key[len(_MARKER_PREFIX) :].decode().rsplit(":", 1)
    return topic, int(number)


def marker_value(next_offset: int, clock: int) -> bytes:
    """A marker: the next offset to handle and the latest event time read there."""
    return orjson.dumps([next_offset, clock])


def read_marker(value: bytes) -> tuple[int, int]:
    next_offset, clock = orjson.loads(value)
    return int(next_offset), int(clock)


class Consumer(Protocol):
    """What progress needs of faust's consumer."""

    def assignment(self) -> set[TopicPartition]: ...

    async def position(self, tp: TopicPartition) -> int | None: ...

    async def seek_wait(self, partitions: Mapping[TopicPartition, int]) -> None: ...


# Per topic the watch looks after: the next offset to handle of one of its partitions
# (None: not known, or not to be watched now).
DoneOf = Callable[[int], Awaitable[int | None]]


class Progress:
    """The next offset to handle per partition (a cache of the stored one), and the
    seek-back and stall state around it; one per worker, reset at each rebalance."""

    def __init__(
        self, consumer: Callable[[], Consumer], stall_seconds: float, stall_tries: int
    ) -> None:
        self.consumer = consumer
        self.stall_seconds = stall_seconds
        self.stall_tries = stall_tries
        # Per marker key: the next offset to handle, and the offset read ahead of it when
        # we sought back to it.
        self.done: dict[bytes, int] = {}
        self.rewound: dict[bytes, int] = {}
        # Per marker key: when a record was last handled there (or last sought back), and
        # the (marker, position) the watch last sought back from, with how many times.
        self.moved_at: dict[bytes, float] = {}
        self.stalled: dict[bytes, tuple[tuple[int, int], int]] = {}
        # Per topic: when its agent last took a record (of any partition).
        self.read_at: dict[str, float] = {}
        # The topics whose agent is in the middle of a batch (handling it, committing it,
        # or waiting for Redis): not stalled, busy.
        self.busy: set[str] = set()
        # Per topic the watch looks after, how to know a partition's next offset.
        self.watched: dict[str, DoneOf] = {}

    def reset(self) -> None:
        """After a rebalance: what is known is reloaded from where it is stored."""
        self.done, self.rewound, self.moved_at, self.stalled = {}, {}, {}, {}

    def read(self, topic: str) -> None:
        self.read_at[topic] = time.monotonic()

    def handled(self, marker: bytes, next_offset: int) -> None:
        self.done[marker] = next_offset
        self.moved_at[marker] = time.monotonic()

    async def in_order(self, tp: TopicPartition, offset: int, done: int | None) -> bool:
        """Whether the record at `offset` is the next to handle of `tp`, whose next offset
        to handle is `done` (None: not known, any is next); seeks back over a gap."""
        marker = marker_key(tp.topic, tp.partition)
        if done is not None and offset != done:
            if offset < done:
                metrics.REDELIVERED.inc()
                return False
            ahead = self.rewound.get(marker)
            if ahead is None:
                await self.rewind(marker, tp, done, offset)
                return False
            if offset > ahead:
                return False  # read ahead before the seek took effect; it comes again
            log.info("%s: no records in [%d, %d), going on", tp, done, offset)
        self.rewound.pop(marker, None)
        return True

    async def rewind(self, marker: bytes, tp: TopicPartition, done: int, ahead: int) -> None:
        metrics.REWINDS.inc()
        log.warning("%s: read at %d, next to handle is %d: seeking back", tp, ahead, done)
        self.rewound[marker] = ahead
        self.moved_at[marker] = time.monotonic()
        # seek_wait seeks from faust's consumer thread, which owns the aiokafka consumer
        # (Consumer.seek calls it from this one; after it the partition stalled once).
        await self.consumer().seek_wait({tp: done})

    async def watch(self) -> None:
        """Seek back a watched partition read past its next offset to handle that has
        handled nothing for `stall_seconds`.

        Only while the topic's agent takes no records at all: a backlogged agent leaves a
        partition unhandled for long while its records wait in the agent's buffer (the
        benchmark saw needless seeks back at 1k events/s). Never while it is busy:
        records read past the marker may then be waiting for it, and going on past them
        would skip them. Seeking again is harmless: what is read twice is skipped. A
        partition sought back from the same place to the same offset `stall_tries` times
        with nothing handled has no records there (only transaction markers, or
        compacted away): go on from there.
        """
        consumer = self.consumer()
        now = time.monotonic()
        for tp in consumer.assignment():
            done_of = self.watched.get(tp.topic)
            if done_of is None or tp.topic in self.busy:
                continue
            done = await done_of(tp.partition)
            marker = marker_key(tp.topic, tp.partition)
            moved_at = self.moved_at.setdefault(marker, now)
            read_at = self.read_at.get(tp.topic, moved_at)
            if done is None or now - max(moved_at, read_at) < self.stall_seconds:
                continue
            position = await consumer.position(tp)
            if position is None or position <= done:
                continue
            place, tries = self.stalled.get(marker, ((done, position), 0))
            tries = tries + 1 if place == (done, position) else 1
            if tries > self.stall_tries:
                log.warning("%s: no records in [%d, %d), going on", tp, done, position)
                self.done[marker] = position
                self.rewound.pop(marker, None)
                self.stalled.pop(marker)
                continue
            self.stalled[marker] = ((done, position), tries)
            await self.rewind(marker, tp, done, position)
