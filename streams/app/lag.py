"""Consumer lag: how far each assigned topic is behind its end, and the Redis view behind
customer-grades, as Prometheus gauges."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiokafka.structs import TopicPartition

from streams.app import metrics
from streams.app.progress import marker_key


async def measure_lag(consumer: Any) -> None:
    """Set `gradestream_consumer_lag{topic}` from faust's consumer."""
    # During a rebalance a partition can be assigned with no position or highwater yet.
    assigned: set[TopicPartition] = consumer.assignment()
    lag: dict[str, int] = {}
    for tp in assigned:
        position = await consumer.position(tp)
        highwater = consumer.highwater(tp)
        if position is not None and highwater is not None:
            lag[tp.topic] = lag.get(tp.topic, 0) + max(0, highwater - position)
    for topic, value in lag.items():
        metrics.CONSUMER_LAG.labels(topic).set(value)


def measure_view_lag(consumer: Any, topic: str, done: Mapping[bytes, int]) -> int:
    """Set and return `gradestream_view_lag`: the records of customer-grades (`topic`) not
    in the Redis view yet, over this worker's partitions of it: each one's end less the
    view's position (`done`, the view agent's). Not the consumer's lag: the consumer reads
    on while a write waits for Redis. A position not loaded yet counts from the start:
    nothing is known to be written."""
    lag = 0
    for tp in consumer.assignment():
        highwater = consumer.highwater(tp) if tp.topic == topic else None
        if highwater is not None:
            lag += max(0, highwater - done.get(marker_key(tp.topic, tp.partition), 0))
    metrics.VIEW_LAG.set(lag)
    return lag
