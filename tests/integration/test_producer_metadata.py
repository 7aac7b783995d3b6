"""The producer that forgot a topic (docs/reliability.md): aiokafka's client, on a real
broker, drops a topic it learned from an all-topics metadata answer as soon as it is sent
a topic created later; `track_topics`, which the worker calls before its first send,
keeps both known and the first topic's record acknowledged."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer

from streams.app.clients import track_topics
from tests.conftest import TopicFactory


async def _forgets_first(kafka: str, new_topic: TopicFactory, tracked: bool) -> bool:
    """Whether, after a send to `first` (known from an all-topics answer) and one to
    `later` (created after that answer), the producer's metadata no longer knows `first`.
    With `tracked`, both are tracked before the sends, as the worker does."""
    first = await new_topic("first", partitions=2)
    # A long linger keeps first's record waiting in the producer while later is sent.
    producer = AIOKafkaProducer(bootstrap_servers=kafka, linger_ms=300)
    await producer.start()
    try:
        # While it tracks no topic, a refresh asks for all of them (as faust's does after
        # each topic it declares).
        # A topic just created reaches every broker's metadata cache a moment later (on a
        # busy broker, after the first refresh): refresh until it is there.
        for _ in range(50):
            await producer.client.force_metadata_update()
            if producer.client.cluster.partitions_for_topic(first) is not None:
                break
            await asyncio.sleep(0.1)
        assert producer.client.cluster.partitions_for_topic(first) == {0, 1}
        later = await new_topic("later", partitions=2)
        if tracked:
            track_topics(producer, [first, later])
        acked = await producer.send(first, b"1", key=b"k")
        await producer.send(later, b"2", key=b"k")
        forgotten = producer.client.cluster.partitions_for_topic(first) is None
        if forgotten:
            # Only another send to it makes the client track it again (in the worker,
            # none comes: the commit that sends is the one waiting).
            await producer.send(first, b"3", key=b"k")
        metadata = await asyncio.wait_for(acked, 30)
        assert metadata.topic == first
        return forgotten
    finally:
        await producer.stop()


async def test_an_untracked_topic_is_forgotten(
    kafka_bootstrap: str, new_topic: TopicFactory
) -> None:
    """The hazard itself. When an aiokafka release fixes it, this fails: then
    `track_topics` can go."""
    assert await _forgets_first(kafka_bootstrap, new_topic, tracked=False)


async def test_tracked_topics_are_kept(kafka_bootstrap: str, new_topic: TopicFactory) -> None:
    assert not await _forgets_first(kafka_bootstrap, new_topic, tracked=True)
