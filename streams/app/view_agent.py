"""The Redis view agent: customer-grades, in batches, to the Redis view.

A separate agent, so that a Redis outage holds back only the view: a batch waiting for
Redis is retried with backoff, forever (`streams.sinks.redis_view`). The view keeps its
own positions in Redis, written in the same pipeline after the batch's snapshots, and
the agent reads on from them, not from faust's committed offsets, with the inputs'
progress rules (`streams.app.progress`): a snapshot faust skipped around a rebalance is
read again.

A Redis that lost its data (`ViewLost`: a restart without persistence, a flush) is
rebuilt from the compacted topic, while grading goes on: the agent forgets its
positions, loads them again (a new life has none: from the start), and the progress
rules seek each partition back to them (a record read above the position, or the watch
for a partition with no new record). A batch finds out when it stores its positions; a
Redis that lost its data while the view had nothing to write is found by the watch,
which asks whether Redis still holds the view's life.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from typing import Any, cast

import faust
import orjson

from streams.app import metrics
from streams.app.progress import Progress, marker_key, marker_place
from streams.sinks.redis_view import RedisView, ViewLost

log = logging.getLogger(__name__)

# How long the progress watch waits for the positions (a Redis outage must not hold up
# the inputs' watch).
POSITIONS_WAIT_SECONDS = 1.0


class ViewAgent:
    """Writes the grades of `topic` to `view`, in offset order per partition."""

    def __init__(
        self,
        view: RedisView,
        progress: Progress,
        topic: str,
        batch_size: int,
        batch_wait_seconds: float,
    ) -> None:
        self.view = view
        self.progress = progress
        self.topic = topic
        self.batch_size = batch_size
        self.batch_wait_seconds = batch_wait_seconds
        progress.watched[topic] = self.done_of

    async def __call__(self, stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        # take_events, not take: the offsets are needed. One Redis pipeline per batch.
        batches = cast(faust.Stream[bytes], stream).take_events(
            self.batch_size, within=self.batch_wait_seconds
        )
        progress = self.progress
        async for events in batches:
            # Busy for the whole batch, as the inputs are: a write waiting for Redis is
            # no stall, and the watch leaves the view's life to the batch meanwhile.
            progress.busy.add(self.topic)
            try:
                metrics.REDIS_WRITES.inc(await self.batch(events))
            except ViewLost:
                self.rebuild()
            finally:
                progress.busy.discard(self.topic)
                progress.read(self.topic)
            yield None

    async def batch(self, events: Iterable[faust.EventT[bytes]]) -> int:
        """Write the grades of the records that are next in their partitions, then the
        positions reached; returns how many snapshots replaced an older one."""
        progress = self.progress
        grades: list[dict[str, Any]] = []
        reached: dict[str, int] = {}
        for event in events:
            message = event.message
            progress.read(message.topic)
            marker = marker_key(message.topic, message.partition)
            # Per record: a rebalance completing during an await here clears them.
            await self.positions([message.partition])
            if await progress.in_order(message.tp, message.offset, progress.done[marker]):
                grades.append(orjson.loads(message.value or b"null"))
                progress.handled(marker, message.offset + 1)
                reached[f"{message.topic}:{message.partition}"] = message.offset + 1
        return await self.view.write(grades, reached)

    def rebuild(self) -> None:
        """Redis lost the view's data: forget every position of the view (and the life
        they belong to); they are loaded again, and the partitions sought back to them."""
        log.warning("redis view: Redis lost the view's data; rebuilding it from %s", self.topic)
        metrics.VIEW_REBUILDS.inc()
        self.view.forget()
        progress = self.progress
        for marker in [m for m in progress.done if marker_place(m)[0] == self.topic]:
            del progress.done[marker]
            progress.rewound.pop(marker, None)
            progress.stalled.pop(marker, None)

    async def positions(self, partitions: Iterable[int]) -> None:
        """Load the view's positions of these partitions from Redis, if not known yet
        (none stored: from the start)."""
        done = self.progress.done
        missing = {p for p in partitions if marker_key(self.topic, p) not in done}
        if not missing:
            return
        stored = await self.view.load_positions()
        for partition in missing:
            done[marker_key(self.topic, partition)] = stored.get(f"{self.topic}:{partition}", 0)

    async def done_of(self, partition: int) -> int | None:
        """For the progress watch, between batches: the view's position in `partition`,
        if Redis answers within `POSITIONS_WAIT_SECONDS` (one try; the watch comes
        again), and still holds the view's life (else the view is rebuilt)."""

        async def known() -> bool:
            await self.positions([partition])
            return await self.view.same_life()

        try:
            same = await asyncio.wait_for(known(), POSITIONS_WAIT_SECONDS)
        except ViewLost:
            same = False
        except Exception as error:
            log.debug("view positions not read (%s); watching them later", error)
            self.view.error = self.view.error or type(error).__name__  # no answer in time
            return None
        if not same:
            # A batch that started meanwhile finds out itself, when it writes.
            if self.topic not in self.progress.busy:
                self.rebuild()
            return None
        return self.progress.done[marker_key(self.topic, partition)]
