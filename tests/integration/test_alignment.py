"""A backlog on the three input topics, drained with the event clock: no good event is
refused as too_late, and the outputs and grades are replay's of the same records in the
order the worker grades them (docs/worker.md, "Event time across topics")."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from streams.produce import produce_async
from tests.conftest import TopicFactory
from tests.integration.support import (
    INPUTS,
    Deployment,
    clean_redis,
    in_worker_order,
    latest,
    make_deployment,
    mismatch,
    read_outputs_of,
    read_topic,
    replay,
    simulated,
)


@pytest.fixture
async def deployment(
    kafka_bootstrap: str, redis_url: str, new_topic: TopicFactory, tmp_path: Path
) -> AsyncIterator[Deployment]:
    deployment = await make_deployment(
        kafka_bootstrap, redis_url, new_topic, tmp_path, one_topic=False
    )
    yield deployment
    await clean_redis(redis_url, deployment.prefix)


@pytest.mark.parametrize("hold", [None, "20"], ids=["default-hold", "pausing"])
async def test_a_backlog_on_three_topics_is_graded_in_event_time_order(
    deployment: Deployment, tmp_path: Path, hold: str | None
) -> None:
    """Each topic is read at its own pace (the sparse orders topic covers months in the
    records that the dense interactions topic spends on days); before event-time
    alignment most interactions of this backlog were refused as too_late. With a hold of
    20 records the partitions ahead are paused and resumed all along: nothing fetched of
    them may be lost (faust's own pause dropped records, sought back later)."""
    if hold is not None:
        deployment.extra_env["GRADESTREAM_ALIGN_HOLD_RECORDS"] = hold
    records = simulated(customers=120, days=200, seed=31)
    ordered = in_worker_order(records)
    assert ordered != records  # the simulator's late and duplicate records move
    expected_outputs, expected_grades = replay(ordered, tmp_path)
    expected_dead = Counter(
        orjson.loads(line)["rejection"]["code"]
        for line in (tmp_path / "dlq.jsonl").read_bytes().splitlines()
    )
    assert "too_late" not in expected_dead
    await produce_async(
        records, deployment.kafka, {name: deployment.topics[name] for name in INPUTS}
    )

    async with deployment.worker("event") as worker:
        grades = latest(
            await read_topic(
                deployment.kafka,
                deployment.topics["customer-grades"],
                lambda got: latest(got) == expected_grades,
                within=180,
                worker=worker,
            )
        )
        assert grades == expected_grades, mismatch(grades, expected_grades)
        outputs = await read_outputs_of(deployment, worker, expected_outputs)
        dead = await read_topic(
            deployment.kafka,
            deployment.topics["dead-letters"],
            lambda got: len(got) >= sum(expected_dead.values()),
            within=30,
            worker=worker,
        )
    codes = Counter(d["rejection"]["code"] for d in dead)
    assert codes["too_late"] == 0, codes
    assert codes == expected_dead
    by_id = {o["event_id"]: o for o in outputs}
    assert sorted(by_id) == sorted(o["event_id"] for o in expected_outputs)
    assert all(by_id[o["event_id"]] == o for o in expected_outputs)
