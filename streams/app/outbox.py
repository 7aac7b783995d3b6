"""The outbox: records the worker sends, and their delivery to the broker.

The grading step only lists what to send (`Send`); `deliver` hands a batch's sends to
the producer and waits until the broker has acknowledged every one, before the batch's
states and markers are persisted (publish, then persist: a crash in between at worst
publishes the same records again, whose ids are deterministic).

Records go out as one record batch per partition (aiokafka's `create_batch` and
`send_batch`), not one `send` each: a send's per-record machinery (its future, the
accumulator, faust's sensors) cost more CPU than a record's grading (docs/benchmarks.md,
"Worker"). A partition's records keep the order they were listed in.
"""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from streams.schedule import key_partition


class Send(NamedTuple):
    """One record to send: to `topic`, keyed, to `partition` (None: by its key). A grade
    also carries its `snapshot` as a dict, for the Redis view (`streams.app.view_writer`)
    not to parse back what the grading step has just serialised."""

    topic: str
    key: bytes | None
    value: bytes
    partition: int | None = None
    snapshot: Mapping[str, Any] | None = None


# A customer's records always go to the same partitions; murmur2 in Python costs more
# than a record's append to its batch.
_key_partition = functools.lru_cache(maxsize=1 << 16)(key_partition)


class Producer(Protocol):
    """aiokafka's producer, as the outbox uses it."""

    def create_batch(self) -> Any: ...

    async def send_batch(self, batch: Any, topic: str, *, partition: int) -> Any: ...

    async def partitions_for(self, topic: str) -> set[int]: ...


@dataclass(frozen=True)
class Sent:
    """A record batch handed to the producer: `ack` resolves once the broker has it, to
    its first record's metadata (`offset`: the first record's)."""

    topic: str
    partition: int
    records: list[Send]
    ack: asyncio.Future[Any]

    @property
    def count(self) -> int:
        return len(self.records)

    def last_offset(self) -> int:
        """The offset of the batch's last record (once acknowledged)."""
        return int(self.ack.result().offset) + self.count - 1


async def send_all(producer: Producer, records: Iterable[Send]) -> list[Sent]:
    """Hand `records` to the producer, a record batch per partition (more when one fills
    up: the producer's largest batch), without waiting for acknowledgements."""
    by_partition: dict[tuple[str, int], list[Send]] = {}
    counts: dict[str, int] = {}
    for record in records:
        partition = record.partition
        if partition is None:
            count = counts.get(record.topic)
            if count is None:
                count = counts[record.topic] = len(await producer.partitions_for(record.topic))
            # As the producer's default partitioner: by the key, keyless at random.
            if record.key is None:
                partition = random.randrange(count)  # noqa: S311 (spreading, not secrecy)
            else:
                partition = _key_partition(record.key, count)
        by_partition.setdefault((record.topic, partition), []).append(record)
    sent: list[Sent] = []
    for (topic, partition), listed in by_partition.items():
        batch, first = producer.create_batch(), 0
        for i, record in enumerate(listed):
            if batch.append(key=record.key, value=record.value, timestamp=None) is None:
                # Full: send it, then start the next (the producer sends them in turn).
                sent.append(await _send(producer, batch, topic, partition, listed[first:i]))
                batch, first = producer.create_batch(), i
                batch.append(key=record.key, value=record.value, timestamp=None)
        sent.append(await _send(producer, batch, topic, partition, listed[first:]))
    return sent


async def _send(
    producer: Producer, batch: Any, topic: str, partition: int, records: list[Send]
) -> Sent:
    batch.close()
    ack = await producer.send_batch(batch, topic, partition=partition)
    return Sent(topic, partition, records, ack)


async def deliver(producer: Producer, records: Iterable[Send]) -> list[Sent]:
    """Send every record, then wait for every acknowledgement."""
    sent = await send_all(producer, records)
    await asyncio.gather(*(s.ack for s in sent))
    return sent
