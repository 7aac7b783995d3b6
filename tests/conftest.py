"""Session fixtures: the real Kafka broker and Redis server the integration tests talk to.

With KAFKA_BOOTSTRAP_SERVERS / REDIS_URL set, the tests use those. Otherwise they start
the local ones from deploy/ (idempotent: a running one is reused) and stop, at the end,
only what they started themselves.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

REPO = Path(__file__).resolve().parents[1]

TopicFactory = Callable[..., Awaitable[str]]

# Apps run as worker subprocesses; importing them here (doctest collection) would start nothing
# but needs their environment.
collect_ignore_glob = ["integration/faust_*.py"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Everything under tests/integration talks to real services; mark it so it can be selected.
    for item in items:
        if "tests/integration/" in str(item.path):
            item.add_marker(pytest.mark.integration)


def _local_service(script: str) -> Iterator[str]:
    """Start a deploy/ service unless it already answers; stop it after only if we started it."""
    path = REPO / "deploy" / script
    already = subprocess.run([path, "status"], capture_output=True, text=True, check=False)
    if already.returncode == 0 and already.stdout.strip():
        yield already.stdout.strip()
        return
    started = subprocess.run([path, "up"], capture_output=True, text=True, check=False)
    if started.returncode != 0:
        pytest.fail(f"{script} up failed:\n{started.stderr}")
    try:
        yield started.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run([path, "down"], capture_output=True, check=False)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    if address := os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield address
        return
    yield from _local_service("kafka/kafka.sh")


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    if url := os.environ.get("REDIS_URL"):
        yield url
        return
    yield from _local_service("redis/redis.sh")


@pytest.fixture
async def new_topic(kafka_bootstrap: str) -> AsyncIterator[TopicFactory]:
    """Create topics with names unique to this test; delete them afterwards."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    created: list[str] = []

    async def create(name: str, partitions: int = 1, **config: str) -> str:
        topic = f"test-{name}-{uuid.uuid4().hex[:10]}"
        await admin.create_topics(
            [NewTopic(topic, num_partitions=partitions, replication_factor=1, topic_configs=config)]
        )
        created.append(topic)
        return topic

    try:
        yield create
    finally:
        if created:
            await admin.delete_topics(created)
        await admin.close()
