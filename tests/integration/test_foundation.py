"""The real parts answer: a Kafka round trip, Redis, and a Faust worker moving a message."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer

from tests.conftest import REPO, TopicFactory
from tests.integration.support import consume, faust_worker


async def test_kafka_round_trip(kafka_bootstrap: str, new_topic: TopicFactory) -> None:
    topic = await new_topic("roundtrip", partitions=2)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    sent = [(f"c-{i}".encode(), f'{{"n": {i}}}'.encode()) for i in range(20)]
    try:
        for key, value in sent:
            await producer.send_and_wait(topic, value=value, key=key)
    finally:
        await producer.stop()
    got = await consume(kafka_bootstrap, topic, len(sent))
    assert sorted(got) == sorted(sent)


async def test_redis_set_get(redis_url: str) -> None:
    client = aioredis.from_url(redis_url)
    key = f"test:{uuid.uuid4().hex}"
    try:
        await client.set(key, b"gold", ex=60)
        assert await client.get(key) == b"gold"
        assert await client.get(f"{key}:absent") is None
    finally:
        await client.delete(key)
        await client.aclose()


async def test_faust_worker_moves_a_message(
    kafka_bootstrap: str, new_topic: TopicFactory, tmp_path: Path
) -> None:
    source = await new_topic("echo-in")
    sink = await new_topic("echo-out")
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(source, value=b"silver", key=b"c-1")
    finally:
        await producer.stop()

    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "ECHO_APP_ID": f"test-echo-{uuid.uuid4().hex[:8]}",
        "ECHO_IN": source,
        "ECHO_OUT": sink,
    }
    async with faust_worker(REPO / "tests/integration/faust_echo.py", tmp_path, env) as worker:
        got = await consume(kafka_bootstrap, sink, 1, within=90)
        assert worker.returncode is None, "the worker died; see worker.log"
    assert got == [(b"c-1", b"SILVER")]
