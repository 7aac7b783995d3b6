"""Rebalance: two workers of one app (own datadirs and web ports) share 4 partitions; one
is SIGKILLed and the other takes its partitions over from the changelog; a third joins
later. The final grades and output events equal replay's."""

from __future__ import annotations

import asyncio
import random
import signal
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from streams.produce import produce_async
from tests.integration.support import (
    INPUTS,
    Deployment,
    GradedWatch,
    duplicates,
    free_texts,
    healthy,
    http_grades,
    latest,
    leaks,
    mismatch,
    read_all,
    read_outputs,
    redis_converges,
    replay,
    simulated,
    wait_for,
)
from tests.reliability.conftest import SECRET_MARKER

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Trial:
    customers: int
    days: int
    seed: int


@pytest.mark.parametrize(
    "trial",
    [
        pytest.param(Trial(150, 365, 61), id="short"),
        pytest.param(
            Trial(1000, 365, 62), id="long", marks=[pytest.mark.soak, pytest.mark.timeout(1800)]
        ),
    ],
)
async def test_partitions_move_between_workers(
    trial: Trial, deployment: Deployment, tmp_path: Path, figures: dict[str, Any]
) -> None:
    records = simulated(trial.customers, trial.days, trial.seed)
    expected_outputs, expected_grades = replay(records, tmp_path)
    await produce_async(records, deployment.kafka, {n: deployment.topics[n] for n in INPUTS})
    grades_topic = deployment.topics["customer-grades"]
    b, c = deployment.replica(1), deployment.replica(2)
    loop = asyncio.get_running_loop()

    async with GradedWatch(deployment.kafka, grades_topic) as watch, AsyncExitStack() as stack:

        async def reached(count: float) -> bool:
            return await watch.total() >= count

        worker_a = await stack.enter_async_context(deployment.worker("event", "worker-a.log"))
        worker_b = await stack.enter_async_context(b.worker("event", "worker-b.log"))
        await wait_for(lambda: reached(0.25 * len(records)), 180, worker_b, every=0.05)
        worker_a.send_signal(signal.SIGKILL)
        await worker_a.wait()
        killed = loop.time()
        at_kill = await watch.total()

        async def moved() -> bool:
            return await watch.total() > at_kill + 50

        takeover_s = await wait_for(moved, 120, worker_b)
        await wait_for(lambda: reached(0.6 * len(records)), 300, worker_b, every=0.2)
        worker_c = await stack.enter_async_context(c.worker("event", "worker-c.log"))
        joined = loop.time()
        # Worker b may have graded everything by now: the partitions must still move.
        await wait_for(lambda: healthy(c.web_port), 120, worker_c)
        grades: dict[str, Any] = {}

        async def caught_up() -> bool:
            nonlocal grades
            assert worker_c.returncode is None, "worker c died"
            grades = latest(await read_all(deployment.kafka, grades_topic))
            return grades == expected_grades

        try:
            await wait_for(caught_up, 600, worker_b, every=1.0)
        except AssertionError:
            pytest.fail(mismatch(grades, expected_grades))
        caught_up_s = loop.time() - joined
        stored = await redis_converges(deployment.redis_url, deployment.prefix, expected_grades)
        assert stored == expected_grades, mismatch(stored, expected_grades)
        # Either worker answers for any customer (table_route forwards to the owner).
        sample = random.Random(trial.seed).sample(sorted(expected_grades), 10)
        for port in (b.web_port, c.web_port):
            assert await http_grades(port, sample) == {x: expected_grades[x] for x in sample}
        assert worker_b.returncode is None
        assert worker_c.returncode is None

    outputs = await read_outputs(deployment)
    got = {o["event_id"]: o for o in outputs}
    want = {o["event_id"]: o for o in expected_outputs}
    figures.update(
        events=len(records),
        killed_after_graded=at_kill,
        takeover_to_new_output_s=round(takeover_s, 2),
        third_joined_after_kill_s=round(joined - killed, 2),
        caught_up_after_join_s=round(caught_up_s, 2),
        expected_outputs=len(want),
        lost=len(set(want) - set(got)),
        unexpected=len(set(got) - set(want)),
        duplicate_outputs=duplicates(outputs),
    )
    assert set(got) == set(want)
    assert all(got[i] == o for i, o in want.items())
    assert not await leaks(deployment, {SECRET_MARKER, *free_texts(records)})
