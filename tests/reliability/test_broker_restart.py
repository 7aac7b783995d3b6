"""The broker stops and starts again in mid-stream. The test runs a broker of its own
(deploy/kafka/kafka.sh on free ports, with a data directory under the test's tmp dir and
the cached jars), so the shared broker other tests use is never restarted. The worker
recovers by itself, nothing is lost, and the Redis view converges."""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.produce import produce_async
from tests.conftest import REPO
from tests.integration.support import (
    INPUTS,
    Deployment,
    GradedWatch,
    duplicates,
    free_port,
    latest,
    make_deployment,
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

KAFKA_SH = REPO / "deploy" / "kafka" / "kafka.sh"


@dataclass
class PrivateBroker:
    env: dict[str, str]
    bootstrap: str = ""

    def run(self, command: str) -> str:
        done = subprocess.run(
            [KAFKA_SH, command], env=self.env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, f"kafka.sh {command}:\n{done.stderr[-3000:]}"
        return done.stdout.strip()

    async def up(self) -> None:
        self.bootstrap = (await asyncio.to_thread(self.run, "up")).splitlines()[-1]

    async def down(self) -> None:
        await asyncio.to_thread(self.run, "down")


@pytest.fixture
async def private_broker(tmp_path: Path) -> AsyncIterator[PrivateBroker]:
    shared = Path(os.environ.get("GRADESTREAM_LOCAL") or REPO / ".local") / "kafka" / "libs"
    if not list(shared.glob(".complete-*")):
        if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
            pytest.skip(
                "NOT RUN: the broker-restart test needs Apache Kafka's jars "
                "(deploy/kafka/kafka.sh jars) to run a broker of its own; "
                "KAFKA_BOOTSTRAP_SERVERS points at a broker it must not restart"
            )
        pytest.fail("no Kafka jars: run deploy/kafka/kafka.sh jars (make test does)")
    local = tmp_path / "local"
    (local / "kafka").mkdir(parents=True)
    (local / "kafka" / "libs").symlink_to(shared)
    env = os.environ | {
        "GRADESTREAM_LOCAL": str(local),
        "KAFKA_PORT": str(free_port()),
        "KAFKA_CONTROLLER_PORT": str(free_port()),
    }
    broker = PrivateBroker(env)
    await broker.up()
    try:
        yield broker
    finally:
        await broker.down()


@pytest.mark.parametrize(
    "outage",
    [
        pytest.param(5.0, id="short"),
        pytest.param(30.0, id="long", marks=[pytest.mark.soak, pytest.mark.timeout(1200)]),
    ],
)
async def test_broker_restart_mid_stream(
    outage: float,
    private_broker: PrivateBroker,
    redis_url: str,
    tmp_path: Path,
    figures: dict[str, Any],
) -> None:
    kafka = private_broker.bootstrap
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await admin.start()

    async def new_topic(name: str, partitions: int = 1, **config: str) -> str:
        topic = f"test-{name}-{uuid.uuid4().hex[:10]}"
        await admin.create_topics([NewTopic(topic, partitions, 1, topic_configs=config)])
        return topic

    try:
        deployment: Deployment = await make_deployment(
            kafka, redis_url, new_topic, tmp_path, one_topic=True
        )
    finally:
        await admin.close()
    deployment.extra_env["GRADESTREAM_KAFKA_SASL_PASSWORD"] = SECRET_MARKER
    records = simulated(customers=150, days=365, seed=71)
    expected_outputs, expected_grades = replay(records, tmp_path)
    await produce_async(records, kafka, {n: deployment.topics[n] for n in INPUTS})
    grades_topic = deployment.topics["customer-grades"]
    loop = asyncio.get_running_loop()

    async with deployment.worker("event") as worker:
        async with GradedWatch(kafka, grades_topic) as watch:

            async def reached() -> bool:
                return await watch.total() >= 0.3 * len(records)

            await wait_for(reached, 180, worker, every=0.05)
        await private_broker.down()
        await asyncio.sleep(outage)
        assert worker.returncode is None, "the worker died with the broker down"
        await private_broker.up()
        back = loop.time()
        grades: dict[str, Any] = {}

        async def caught_up() -> bool:
            nonlocal grades
            grades = latest(await read_all(kafka, grades_topic))
            return grades == expected_grades

        try:
            await wait_for(caught_up, 600, worker, every=1.0)
        except AssertionError:
            pytest.fail(mismatch(grades, expected_grades))
        caught_up_s = loop.time() - back
        stored = await redis_converges(redis_url, deployment.prefix, expected_grades)
        assert stored == expected_grades, mismatch(stored, expected_grades)

    outputs = await read_outputs(deployment)
    got = {o["event_id"] for o in outputs}
    want = {o["event_id"] for o in expected_outputs}
    figures.update(
        events=len(records),
        outage_s=outage,
        caught_up_after_broker_back_s=round(caught_up_s, 2),
        lost=len(want - got),
        unexpected=len(got - want),
        duplicate_outputs=duplicates(outputs),
    )
    assert got == want
