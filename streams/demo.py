"""`make demo`: run what gradestream has, for real, on the local broker and Redis.

Stage 1 (foundation): start the local Kafka and Redis, send sample events through a
topic and read them back, and store one in Redis. Each later stage replaces this with
more of the real pipeline.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from pathlib import Path

import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

REPO = Path(__file__).resolve().parents[1]


def service(script: str, env_name: str) -> str:
    """The address from the environment, else the local service (started if needed)."""
    if address := os.environ.get(env_name):
        return address
    out = subprocess.run(
        [REPO / "deploy" / script, "up"], capture_output=True, text=True, check=True
    )
    return out.stdout.strip().splitlines()[-1]


async def run() -> None:
    bootstrap = service("kafka/kafka.sh", "KAFKA_BOOTSTRAP_SERVERS")
    redis_url = service("redis/redis.sh", "REDIS_URL")
    print(f"Kafka at {bootstrap}, Redis at {redis_url}")
    topic = f"demo-orders-{uuid.uuid4().hex[:6]}"
    events: list[dict[str, str | float]] = [
        {
            "event_id": f"e{i}",
            "customer_id": f"c-{i % 3}",
            "type": "order_placed",
            "occurred_at": f"2026-11-0{i + 1}T10:00:00Z",
            "order_id": f"o{i}",
            "amount": 120.0 * (i + 1),
            "currency": "USD",
        }
        for i in range(6)
    ]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for event in events:
            await producer.send_and_wait(
                topic, orjson.dumps(event), key=str(event["customer_id"]).encode()
            )
    finally:
        await producer.stop()
    print(f"produced {len(events)} order events to topic {topic}")

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    seen = 0
    try:
        async with asyncio.timeout(30):
            async for record in consumer:
                event = orjson.loads(record.value)
                print(
                    f"  read {record.topic}[{record.partition}]@{record.offset}: "
                    f"{event['customer_id']} {event['type']} {event['amount']}"
                )
                seen += 1
                if seen == len(events):
                    break
    finally:
        await consumer.stop()

    client = aioredis.from_url(redis_url)
    try:
        await client.hset("gradestream:demo", mapping={"events_read": seen, "topic": topic})
        print(f"Redis hash gradestream:demo = {await client.hgetall('gradestream:demo')}")
    finally:
        await client.aclose()
    print("The grader itself is not built yet: this demo proved the broker and Redis work.")


def main() -> None:
    asyncio.run(run())


if __name__ == "__main__":
    main()
