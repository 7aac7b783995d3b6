"""The Redis view in trouble, against a private redis-server (the shared one is never
stopped): killed and started again empty, as a restarted cache without persistence
comes back (the running worker rebuilds the view from customer-grades by itself); and
refusing the worker's password (/health says the view is failing, grading is not)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from streams.produce import produce_async
from tests.conftest import TopicFactory
from tests.integration.support import (
    INPUTS,
    Deployment,
    PrivateRedis,
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
) -> Deployment:
    # One topic, so that the grades equal replay's (docs/worker.md, "Ordering").
    deployment = await make_deployment(
        kafka_bootstrap, private_redis.url, new_topic, tmp_path, one_topic=True
    )
    deployment.extra_env["GRADESTREAM_REDIS_URL"] = f"redis://127.0.0.1:{private_redis.port}/0"
    deployment.extra_env["GRADESTREAM_REDIS_PASSWORD"] = PASSWORD
    return deployment  # no clean-up: the server goes with the test


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


async def get(port: int, path: str) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}{path}") as response,
    ):
        return response.status, await response.json(content_type=None)


async def test_health_says_the_view_cannot_write(
    deployment: Deployment, private_redis: PrivateRedis, tmp_path: Path
) -> None:
    """Issue 16: with a wrong Redis password /health said 200 while the view wrote
    nothing. Now it says which part is degraded, /health/grading (the probes') stays 200,
    and the view's lag shows; once the password is right the view catches up."""
    wrong = "not-the-password"
    deployment.extra_env["GRADESTREAM_REDIS_PASSWORD"] = wrong
    deployment.extra_env["GRADESTREAM_LAG_INTERVAL_SECONDS"] = "0.5"
    records = simulated(customers=30, days=90, seed=47)
    _, expected = replay(records, tmp_path)
    rename = {name: deployment.topics[name] for name in INPUTS}
    await produce_async(records, deployment.kafka, rename)
    port = deployment.web_port

    async with deployment.worker("event") as worker:
        answer: tuple[int, Any] = (0, None)

        async def degraded() -> bool:
            nonlocal answer
            try:
                answer = await get(port, "/health")
            except aiohttp.ClientConnectionError:
                return False
            return answer[0] == 503 and bool(answer[1].get("view_lag"))

        await wait_for(degraded, 120, worker, every=0.5)
        body = answer[1]
        assert body == {
            "status": "degraded",
            "grading": "ok",
            "view": "failing",
            "view_error": "AuthenticationError",
            "view_lag": body["view_lag"],
        }
        assert body["view_lag"] > 0
        assert await get(port, "/health/grading") == (200, {"status": "ok"})
        assert await metric(deployment, "gradestream_view_lag") > 0

        # The server takes the worker's password from now on: the view catches up.
        client = aioredis.from_url(private_redis.url)
        try:
            await client.config_set("requirepass", wrong)
        finally:
            await client.aclose()
        right_url = f"redis://:{wrong}@127.0.0.1:{private_redis.port}/0"
        stored = await redis_converges(right_url, deployment.prefix, expected)
        assert stored == expected, mismatch(stored, expected)

        async def healthy() -> bool:
            ok = {"status": "ok", "grading": "ok", "view": "ok", "view_lag": 0}
            return await get(port, "/health") == (200, ok)

        await wait_for(healthy, 30, worker, every=0.5)
        assert await metric(deployment, "gradestream_view_lag") == 0
