"""`gradestream bootstrap` on the real broker and Redis: a history graded up to T and
handed over; then a plain worker continues from T with the events after it, and ends
where replay of the whole history ends."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer

from streams.app.alignment import event_time_of
from streams.core.policy import load_policy
from streams.replay import replay_file
from streams.simulate import SimConfig, SimRecord, generate, write_jsonl
from tests.conftest import REPO, TopicFactory
from tests.integration.support import (
    Deployment,
    clean_redis,
    healthy,
    http_grades,
    in_worker_order,
    keyed,
    latest,
    make_deployment,
    mismatch,
    read_all,
    read_outputs_of,
    read_topic,
    redis_converges,
    replay,
    wait_for,
)


def stamped(records: Sequence[SimRecord]) -> list[tuple[SimRecord, int]]:
    """Each record with a Kafka timestamp: its event time, as a producer sending events as
    they happen gives it (a record with none takes the one before's)."""
    out, last = [], 0
    for record in records:
        last = event_time_of(record.value) or last
        out.append((record, last * 1000))
    return out


async def produce(
    deployment: Deployment, records: Sequence[tuple[SimRecord, int]], one_by_one: bool = False
) -> None:
    """Send to the input topics with the records' timestamps; `one_by_one`: each waits for
    the one before, as events happening one after the other."""
    producer = AIOKafkaProducer(bootstrap_servers=deployment.kafka, acks="all")
    await producer.start()
    try:
        pending = []
        for (topic, key, value), timestamp in records:
            sent = await producer.send(
                deployment.topics[topic], value, key=key, timestamp_ms=timestamp
            )
            pending.append(sent)
            if one_by_one:
                await sent
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def bootstrap(deployment: Deployment, *args: str) -> tuple[int, str]:
    """Run `gradestream bootstrap` as an operator does; its exit code and stderr."""
    dead_letters = deployment.datadir / "bootstrap.dlq.jsonl"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "streams.cli",
        "bootstrap",
        *args,
        "--dead-letters",
        str(dead_letters),
        env=deployment.env(),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, err.decode()


def rfc3339(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_a_bootstrapped_worker_continues_as_replay_of_the_whole_history(
    kafka_bootstrap: str, redis_url: str, new_topic: TopicFactory, tmp_path: Path
) -> None:
    # The input topics keep their history, as a production cluster's do (no time
    # retention: the records are stamped with their 2024 event times).
    deployment = await make_deployment(
        kafka_bootstrap, redis_url, new_topic, tmp_path, one_topic=False, **{"retention.ms": "-1"}
    )
    try:
        await _bootstrap_then_live(deployment, tmp_path)
    finally:
        await clean_redis(redis_url, deployment.prefix)


async def _bootstrap_then_live(deployment: Deployment, tmp_path: Path) -> None:
    # Events sent as they happen (no late ones: those are test_alignment's), in the order
    # the worker grades them: the history file, and what the topics hold.
    config = SimConfig(late_rate=0.0)
    records = in_worker_order(keyed(generate(80, 150, seed=13, config=config)))
    history = tmp_path / "history.jsonl"
    write_jsonl(records, history)
    times = stamped(records)
    until = times[2 * len(times) // 3][1] // 1000
    live_from = 5 * len(times) // 6

    # The reference: replay of the whole history; and of the events before T alone, whose
    # outputs the bootstrap does not publish.
    (tmp_path / "whole").mkdir()
    whole_outputs, whole_grades = replay(records, tmp_path / "whole")
    before = tmp_path / "before"
    before.mkdir()
    policy = load_policy(None)
    replay_file(
        history, policy, before / "out", before / "snap", before / "dlq", partitions=4, until=until
    )
    before_ids = {
        orjson.loads(line)["event_id"] for line in (before / "out").read_bytes().splitlines()
    }
    after_outputs = [o for o in whole_outputs if o["event_id"] not in before_ids]
    assert before_ids
    assert after_outputs

    # The topics hold the history up to T and a backlog after it; then the bootstrap.
    await produce(deployment, times[:live_from])
    missing = replace(deployment, extra_env={"GRADESTREAM_TOPIC_ORDERS": "no-such-topic"})
    code, err = await bootstrap(missing, str(history), "--until", rfc3339(until))
    assert code == 2
    assert err == "bootstrap refused: input topic 'no-such-topic' does not exist\n"
    code, err = await bootstrap(deployment, str(history), "--until", rfc3339(until))
    assert code == 0, err
    code, err = await bootstrap(deployment, str(history), "--until", rfc3339(until))
    assert code == 2
    assert err.count("\n") == 1
    assert "already has state" in err

    async with deployment.worker("event") as worker:
        await wait_for(lambda: healthy(deployment.web_port), 60, worker)
        code, err = await bootstrap(deployment, str(history), "--until", rfc3339(until), "--force")
        assert code == 2
        assert "running worker" in err
        # The rest happens live, one event after the other.
        await produce(deployment, times[live_from:], one_by_one=True)

        grades = latest(
            await read_topic(
                deployment.kafka,
                deployment.topics["customer-grades"],
                lambda got: latest(got) == whole_grades,
                worker=worker,
            )
        )
        assert grades == whole_grades, mismatch(grades, whole_grades)
        outputs = await read_outputs_of(deployment, worker, after_outputs)
        stored = await redis_converges(deployment.redis_url, deployment.prefix, whole_grades)
        assert stored == whole_grades, mismatch(stored, whole_grades)
        looked_up = await http_grades(deployment.web_port, sorted(whole_grades))
        assert looked_up == whole_grades, mismatch(looked_up, whole_grades)
        dead = await read_all(deployment.kafka, deployment.topics["dead-letters"])

    by_id = {o["event_id"]: o for o in outputs}
    assert sorted(by_id) == sorted(o["event_id"] for o in after_outputs)
    assert all(by_id[o["event_id"]] == o for o in after_outputs)
    assert not [d for d in dead if d["rejection"]["code"] == "too_late"]

    # With the workers stopped, --force overwrites the state.
    code, err = await bootstrap(deployment, str(history), "--until", rfc3339(until), "--force")
    assert code == 0, err
