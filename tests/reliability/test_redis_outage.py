"""Redis goes away mid-stream (a private redis-server, so other tests are not disturbed)
and comes back: the worker goes on grading, loses nothing, and the view converges. The
server requires a password, given to the worker as GRADESTREAM_REDIS_PASSWORD (a marker
that must not show in any log)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from streams.produce import produce_async
from tests.integration.support import (
    INPUTS,
    Deployment,
    PrivateRedis,
    free_texts,
    latest,
    leaks,
    mismatch,
    private_redis_server,
    read_all,
    read_topic,
    redis_converges,
    redis_grades,
    replay,
    simulated,
    wait_for,
)
from tests.reliability.conftest import SECRET_MARKER

pytestmark = pytest.mark.integration

REDIS_PASSWORD = "redis-" + SECRET_MARKER


@pytest.fixture
async def private_redis(tmp_path: Path) -> AsyncIterator[PrivateRedis]:
    # An append-only file: a stop and start keeps the data, as a real outage would.
    async with private_redis_server(tmp_path / "redis", REDIS_PASSWORD, keep=True) as server:
        yield server


@pytest.mark.parametrize(
    "outage",
    [
        pytest.param(8.0, id="short"),
        pytest.param(30.0, id="long", marks=[pytest.mark.soak, pytest.mark.timeout(900)]),
    ],
)
async def test_redis_outage_delays_the_view_only(
    outage: float,
    deployment: Deployment,
    private_redis: PrivateRedis,
    tmp_path: Path,
    figures: dict[str, Any],
) -> None:
    deployment.redis_url = private_redis.url
    deployment.extra_env["GRADESTREAM_REDIS_URL"] = f"redis://127.0.0.1:{private_redis.port}/0"
    deployment.extra_env["GRADESTREAM_REDIS_PASSWORD"] = REDIS_PASSWORD
    records = simulated(customers=120, days=365, seed=41)
    expected_outputs, expected_grades = replay(records, tmp_path)
    half = len(records) // 2
    rename = {n: deployment.topics[n] for n in INPUTS}
    await produce_async(records[:half], deployment.kafka, rename)
    loop = asyncio.get_running_loop()

    async with deployment.worker("event") as worker:

        async def view_written() -> bool:
            grades = await redis_grades(deployment.redis_url, deployment.prefix, expected_grades)
            return any(g is not None for g in grades.values())

        await wait_for(view_written, 120, worker, every=0.5)
        await private_redis.stop()
        down_at = loop.time()
        # The rest of the stream arrives while Redis is down; grading goes on.
        await produce_async(records[half:], deployment.kafka, rename)
        grades_topic = deployment.topics["customer-grades"]
        grades = latest(
            await read_topic(
                deployment.kafka,
                grades_topic,
                lambda got: latest(got) == expected_grades,
                within=max(outage, 120),
                worker=worker,
            )
        )
        graded_during_outage = loop.time() - down_at < outage
        assert grades == expected_grades, mismatch(grades, expected_grades)
        await asyncio.sleep(max(0.0, outage - (loop.time() - down_at)))
        assert worker.returncode is None, "the worker died with Redis down"
        await private_redis.start()
        back_at = loop.time()
        stored = await redis_converges(deployment.redis_url, deployment.prefix, expected_grades)
        assert stored == expected_grades, mismatch(stored, expected_grades)
        converged_s = loop.time() - back_at
        assert worker.returncode is None

    outputs = await read_all(deployment.kafka, deployment.topics["tier-changes"])
    want = {o["event_id"] for o in expected_outputs if o["type"] == "tier_changed"}
    assert want <= {o["event_id"] for o in outputs}
    log = "\n".join(p.read_text(errors="replace") for p in deployment.logs())
    figures.update(
        events=len(records),
        outage_s=outage,
        grading_finished_during_outage=graded_during_outage,
        view_converged_after_return_s=round(converged_s, 2),
        retry_warnings=log.count("redis view: write of"),
    )
    assert not await leaks(deployment, {SECRET_MARKER, REDIS_PASSWORD, *free_texts(records)})
