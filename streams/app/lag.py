"""Consumer lag: how far each assigned topic is behind its end, as a Prometheus gauge (the
Redis view's lag is `ViewWriter.lag`)."""

from __future__ import annotations

from typing import Any

from aiokafka.structs import TopicPartition

from streams.app import metrics


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
