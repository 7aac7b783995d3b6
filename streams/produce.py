"""Send records to Kafka: how `gradestream simulate --kafka` feeds a broker."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable, Mapping

from aiokafka import AIOKafkaProducer

from streams.simulate import SimRecord


async def produce_async(
    records: Iterable[SimRecord],
    bootstrap: str,
    rename: Mapping[str, str] | None = None,
    producer_options: Mapping[str, object] | None = None,
) -> dict[str, int]:
    """Send every record to its topic (renamed by `rename`), waiting until all are acked.

    Returns counts per topic, as sent.
    """
    rename = rename or {}
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, acks="all", **(producer_options or {})
    )
    await producer.start()
    counts: Counter[str] = Counter()
    pending: list[asyncio.Future[object]] = []
    try:
        for topic, key, value in records:
            name = rename.get(topic, topic)
            pending.append(await producer.send(name, value=value, key=key))
            counts[name] += 1
            # Bound what is in flight so memory stays flat on large files.
            if len(pending) >= 10_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return dict(counts)


def produce(
    records: Iterable[SimRecord],
    bootstrap: str,
    rename: Mapping[str, str] | None = None,
    producer_options: Mapping[str, object] | None = None,
) -> dict[str, int]:
    return asyncio.run(produce_async(records, bootstrap, rename, producer_options))
