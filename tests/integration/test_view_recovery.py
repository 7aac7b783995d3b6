"""The Redis view after Redis lost its data: a private redis-server (the shared one is
never stopped) killed and started again empty, as a restarted cache without persistence
comes back. The running worker rebuilds the view from customer-grades by itself."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from streams.produce import produce_async
from tests.conftest import TopicFactory
from tests.integration.support import (
    INPUTS,
    Deployment,
    PrivateRedis,
    clean_redis,
    latest,
    make_deployment,
    metric,
    mismatch,
    private_redis_server,
    read_topic,
    redis_converges,
    redis_grades,
    replay,
    simulated,
    wait_for,
)

PASSWORD = "view-recovery"  # noqa: S105 (a test server's)


@pytest.fixture
async def private_redis(tmp_path: Path) -> AsyncIterator[PrivateRedis]:
    async with private_redis_server(tmp_path / "redis", PASSWORD, keep=False) as server:
        yield server


@pytest.fixture
async def deployment(
    kafka_bootstrap: str,
    new_topic: TopicFactory,
    private_redis: PrivateRedis,
    tmp_path: Path,
) -> AsyncIterator[Deployment]:
    # One topic, so that the grades equal replay's (docs/worker.md, "Ordering").
    deployment = await make_deployment(
        kafka_bootstrap, private_redis.url, new_topic, tmp_path, one_topic=True
    )
    deployment.extra_env["GRADESTREAM_REDIS_URL"] = f"redis://127.0.0.1:{private_redis.port}/0"
    deployment.extra_env["GRADESTREAM_REDIS_PASSWORD"] = PASSWORD
    yield deployment
    await clean_redis(private_redis.url, deployment.prefix)


async def test_a_redis_that_came_back_empty_is_rebuilt_while_the_worker_runs(
    deployment: Deployment, private_redis: PrivateRedis, tmp_path: Path
) -> None:
    """Issue 16: the batch retried through the outage used to store the positions it
    reached in the empty Redis, and the customers graded before the outage never came
    back. Twice: Redis lost while a batch waits for it (found by the batch), then while
    the view has nothing to write (found by the progress watch)."""
    records = simulated(customers=60, days=150, seed=43)
    _, expected = replay(records, tmp_path)
    half = len(records) // 2
    rename = {name: deployment.topics[name] for name in INPUTS}
    await produce_async(records[:half], deployment.kafka, rename)
    url, prefix = deployment.redis_url, deployment.prefix

    async with deployment.worker("event") as worker:

        async def view_written() -> bool:
            grades = await redis_grades(url, prefix, expected)
            return sum(g is not None for g in grades.values()) > len(expected) // 3

        await wait_for(view_written, 120, worker, every=0.5)
        await private_redis.stop(kill=True)
        # The rest arrives while Redis is down: grading goes on, the view's batch waits.
        await produce_async(records[half:], deployment.kafka, rename)
        grades = latest(
            await read_topic(
                deployment.kafka,
                deployment.topics["customer-grades"],
                lambda got: latest(got) == expected,
                worker=worker,
            )
        )
        assert grades == expected, mismatch(grades, expected)
        await asyncio.sleep(2)  # the view's batch retried meanwhile
        await private_redis.start()
        stored = await redis_converges(url, prefix, expected)
        assert stored == expected, mismatch(stored, expected)

        # Lost again with nothing left to write: the watch notices.
        await private_redis.stop(kill=True)
        await private_redis.start()
        stored = await redis_converges(url, prefix, expected)
        assert stored == expected, mismatch(stored, expected)
        assert await metric(deployment, "gradestream_view_rebuilds_total") >= 2
        assert worker.returncode is None
