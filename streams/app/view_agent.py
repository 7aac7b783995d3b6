"""The Redis view agent: customer-grades, in batches, to the Redis view.

A separate agent, so that a Redis outage holds back only the view: a batch waiting for
Redis is retried with backoff, forever (`streams.sinks.redis_view`). The view keeps its
own positions in Redis, written in the same pipeline after the batch's snapshots, and
the agent reads on from them, not from faust's committed offsets, with the inputs'
progress rules (`streams.app.progress`): a snapshot faust skipped around a rebalance is
read again, and a Redis that lost its data (no positions) is rebuilt from the start of
the compacted topic.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from typing import Any, cast

import faust
import orjson

from streams.app import metrics
from streams.app.progress import Progress, marker_key
from streams.sinks.redis_view import RedisView

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
            progress.busy.add(self.topic)  # a write waiting for Redis is no stall
            try:
                written = await self.view.write(grades, reached)
            finally:
                progress.busy.discard(self.topic)
            progress.read(self.topic)
            metrics.REDIS_WRITES.inc(written)
            yield None

    async def positions(self, partitions: Iterable[int]) -> None:
        """Load the view's positions of these partitions from Redis, if not known yet
        (none stored: from the start)."""
        done = self.progress.done
        missing = {p for p in partitions if marker_key(self.topic, p) not in done}
        if not missing:
            return
        stored = await self.view.positions()
        for partition in missing:
            done[marker_key(self.topic, partition)] = stored.get(f"{self.topic}:{partition}", 0)

    async def done_of(self, partition: int) -> int | None:
        """For the progress watch: the view's position in `partition`, if Redis answers
        within `POSITIONS_WAIT_SECONDS` (one try; the watch comes again)."""
        try:
            await asyncio.wait_for(self.positions([partition]), POSITIONS_WAIT_SECONDS)
        except Exception as error:
            log.debug("view positions not read (%s); watching them later", error)
            return None
        return self.progress.done[marker_key(self.topic, partition)]
