"""Crash: the worker is SIGKILLed at seeded random moments while it works through a
stream, and restarted each time with the same datadir and app id. Afterwards nothing is
lost: the final grades (topic, Redis, HTTP) equal replay's, and every output event of
replay is in the output topics at least once; duplicates are counted."""

from __future__ import annotations

import asyncio
import base64
import random
import signal
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.produce import produce_async
from tests.integration.support import (
    INPUTS,
    Deployment,
    GradedWatch,
    duplicates,
    free_texts,
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
    kills: int
    seed: int


SHORT = Trial(customers=150, days=365, kills=2, seed=101)  # ~5k events
LONG = Trial(customers=1500, days=365, kills=6, seed=202)  # ~55k events


@pytest.mark.parametrize(
    "trial",
    [
        pytest.param(SHORT, id="short"),
        pytest.param(LONG, id="long", marks=[pytest.mark.soak, pytest.mark.timeout(3600)]),
    ],
)
async def test_sigkill_loses_nothing(
    trial: Trial, deployment: Deployment, tmp_path: Path, figures: dict[str, Any]
) -> None:
    records = simulated(trial.customers, trial.days, trial.seed)
    expected_outputs, expected_grades = replay(records, tmp_path)
    await produce_async(records, deployment.kafka, {n: deployment.topics[n] for n in INPUTS})
    rng = random.Random(trial.seed)
    # Kill points: seeded random amounts of events graded (GradedWatch),
    # spread over the stream, so that every kill lands while the worker is at work.
    points = sorted(rng.uniform(0.1, 0.85) * len(records) for _ in range(trial.kills))
    loop = asyncio.get_running_loop()
    first_output: list[float] = []
    killed_at: list[int] = []
    grades_topic = deployment.topics["customer-grades"]

    async with GradedWatch(deployment.kafka, grades_topic) as watch:
        for run, point in enumerate(points):
            before = await watch.total()
            async with deployment.worker("event", log_name=f"worker-{run}.log") as worker:

                async def progressed(before: int = before) -> bool:
                    return await watch.total() > before

                async def reached(point: float = point) -> bool:
                    return await watch.total() >= point

                first_output.append(await wait_for(progressed, 120, worker))
                await wait_for(reached, 300, worker, every=0.05)
                worker.send_signal(signal.SIGKILL)
                await worker.wait()
                killed_at.append(await watch.total())

        # Nothing more to kill: the last worker must catch up with replay.
        async with deployment.worker("event", log_name="worker-final.log") as worker:
            started = loop.time()
            grades: dict[str, Any] = {}

            async def caught_up() -> bool:
                nonlocal grades
                grades = latest(await read_all(deployment.kafka, grades_topic))
                return grades == expected_grades

            try:
                await wait_for(caught_up, 300, worker, every=1.0)
            except AssertionError:
                pytest.fail(mismatch(grades, expected_grades))
            caught_up_s = loop.time() - started
            stored = await redis_converges(deployment.redis_url, deployment.prefix, expected_grades)
            assert stored == expected_grades, mismatch(stored, expected_grades)
            sample = random.Random(trial.seed).sample(sorted(expected_grades), 20)
            over_http = await http_grades(deployment.web_port, sample)
            assert over_http == {c: expected_grades[c] for c in sample}

    outputs = await read_outputs(deployment)
    # Dead letters, compared with replay's by the record's bytes.
    dead = Counter(
        base64.b64decode(d["value_b64"])
        for d in await read_all(deployment.kafka, deployment.topics["dead-letters"])
    )
    replay_dead = Counter(
        base64.b64decode(orjson.loads(line)["value_b64"])
        for line in (tmp_path / "dlq.jsonl").read_bytes().splitlines()
    )
    got_ids = {o["event_id"] for o in outputs}
    want_ids = {o["event_id"] for o in expected_outputs}
    lost = want_ids - got_ids
    unexpected = got_ids - want_ids
    by_id = {o["event_id"]: o for o in outputs}
    differ = [o["event_id"] for o in expected_outputs if by_id.get(o["event_id"], o) != o]
    figures.update(
        events=len(records),
        customers=len(expected_grades),
        kills=len(killed_at),
        graded_at_kills=killed_at,
        kill_points=[round(p) for p in points],
        restart_to_first_output_s=[round(x, 2) for x in first_output[1:]],
        final_restart_to_caught_up_s=round(caught_up_s, 2),
        expected_outputs=len(want_ids),
        output_records=len(outputs),
        lost=len(lost),
        unexpected=len(unexpected),
        duplicate_outputs=duplicates(outputs),
        dead_letters=dead.total(),
        replay_dead_letters=replay_dead.total(),
        duplicate_dead_letters=(dead - replay_dead).total(),
        duplicates_by_type=dict(
            Counter(o["type"] for o in outputs) - Counter(o["type"] for o in expected_outputs)
        ),
    )
    assert not lost, f"{len(lost)} output events of replay never appeared"
    # The dead letters are replay's: none missing, none replay does not have. A record
    # dead-lettered just before a kill, whose progress marker died with the process, is
    # dead-lettered again: a duplicate, counted.
    assert set(dead) == set(replay_dead), (
        f"{len(set(replay_dead) - set(dead))} dead letters of replay missing, "
        f"{len(set(dead) - set(replay_dead))} that replay does not have"
    )
    assert not unexpected, f"{len(unexpected)} output events replay does not have"
    assert not differ, f"{len(differ)} output events differ from replay's"
    assert len(killed_at) == trial.kills
    assert not await leaks(deployment, {SECRET_MARKER, *free_texts(records)})
