"""The worker against the real broker and Redis, as a subprocess, compared with replay."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import orjson
import pytest
import redis.asyncio as aioredis

from streams.contracts import decode
from streams.core.errors import Rejection
from streams.core.policy import load_policy
from streams.produce import produce_async
from streams.simulate import SimConfig, SimRecord, generate
from streams.sinks.redis_view import RedisView
from tests.conftest import REPO, TopicFactory
from tests.integration.support import (
    INPUTS,
    Deployment,
    clean_redis,
    end_offsets,
    graded_events,
    latest,
    make_deployment,
    metric,
    mismatch,
    read_all,
    read_outputs,
    read_outputs_of,
    read_topic,
    redis_converges,
    replay,
    simulated,
    wait_for,
)

# The packaged policy's version, which the outputs carry.
VERSION = load_policy(None).policy_version


@pytest.fixture(params=["three-topics"])
async def deployment(
    request: pytest.FixtureRequest,
    kafka_bootstrap: str,
    redis_url: str,
    new_topic: TopicFactory,
    tmp_path: Path,
) -> AsyncIterator[Deployment]:
    deployment = await make_deployment(
        kafka_bootstrap, redis_url, new_topic, tmp_path, one_topic=request.param == "one-topic"
    )
    yield deployment
    await clean_redis(redis_url, deployment.prefix)


@pytest.mark.parametrize("deployment", ["one-topic"], indirect=True)
async def test_worker_equals_replay(deployment: Deployment, tmp_path: Path) -> None:
    """All events on one topic: each customer's events reach the worker in file order,
    so outputs and grades must equal replay's exactly (see docs/worker.md on ordering).
    Over more than a year, so that tiers lapse by time and are warned of first."""
    records = simulated(customers=80, days=420, seed=11)
    expected_outputs, expected_grades = replay(records, tmp_path)
    assert any(o["type"] == "tier_warning" for o in expected_outputs)
    rename = {name: deployment.topics[name] for name in INPUTS}
    await produce_async(records, deployment.kafka, rename)

    async with deployment.worker("event") as worker:
        grades = latest(
            await read_topic(
                deployment.kafka,
                deployment.topics["customer-grades"],
                lambda got: latest(got) == expected_grades,
                worker=worker,
            )
        )
        assert grades == expected_grades, mismatch(grades, expected_grades)
        outputs = await read_outputs_of(deployment, worker, expected_outputs)
        assert worker.returncode is None, (deployment.datadir / "worker.log").read_text()[-3000:]

        # Redis converges on the same grades.
        stored = await redis_converges(deployment.redis_url, deployment.prefix, expected_grades)
        assert stored == expected_grades, mismatch(stored, expected_grades)

        # The HTTP lookup answers with the current grade, 404 for a stranger.
        some_customer = sorted(expected_grades)[0]
        base = f"http://127.0.0.1:{deployment.web_port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/customers/{some_customer}") as response:
                assert response.status == 200
                assert await response.json() == expected_grades[some_customer]
            async with http.get(f"{base}/customers/nobody-{uuid.uuid4().hex}") as response:
                assert response.status == 404
            async with http.get(f"{base}/health") as response:
                assert response.status == 200
            async with http.get(f"{base}/metrics") as response:
                text = await response.text()
                assert "gradestream_events_in_total" in text

    assert grades == expected_grades, mismatch(grades, expected_grades)
    by_id = {o["event_id"]: o for o in outputs}
    assert sorted(by_id) == sorted(o["event_id"] for o in expected_outputs)
    assert all(by_id[o["event_id"]] == o for o in expected_outputs)


@pytest.mark.parametrize("deployment", ["one-topic"], indirect=True)
async def test_the_shadow_policy_grades_as_replay_under_it(
    deployment: Deployment, new_topic: TopicFactory, tmp_path: Path
) -> None:
    """GRADESTREAM_SHADOW_POLICY: the worker also grades under a policy whose silver
    starts at 40,000, and its grades on the shadow topic are replay's under that policy;
    the live grades stay replay's under the live one, and Redis holds only those."""
    default = (REPO / "streams" / "policies" / "default.toml").read_text()
    shadow_file = tmp_path / "silver-40k.toml"
    shadow_file.write_text(
        default.replace(f'policy_version = "{VERSION}"', 'policy_version = "silver-40k"').replace(
            "min_spend = 50000.0", "min_spend = 40000.0"
        )
    )
    shadow = load_policy(shadow_file)
    assert shadow.policy_version == "silver-40k"
    assert shadow.tiers.ladder[2].min_spend == 40_000.0
    records = simulated(customers=60, days=420, seed=3)
    (tmp_path / "live").mkdir()
    (tmp_path / "shadow").mkdir()
    _, expected_grades = replay(records, tmp_path / "live")
    _, expected_shadow = replay(records, tmp_path / "shadow", policy=shadow)
    assert any(
        expected_shadow[c] != g | {"policy_version": "silver-40k"}
        for c, g in expected_grades.items()
    )
    shadow_topic = await new_topic("shadow-grades", partitions=4, **{"cleanup.policy": "compact"})
    deployment.extra_env |= {
        "GRADESTREAM_SHADOW_POLICY": str(shadow_file),
        "GRADESTREAM_TOPIC_SHADOW_GRADES": shadow_topic,
    }
    await produce_async(records, deployment.kafka, {n: deployment.topics[n] for n in INPUTS})

    async with deployment.worker("event") as worker:
        shadow_grades = latest(
            await read_topic(
                deployment.kafka,
                shadow_topic,
                lambda got: latest(got) == expected_shadow,
                worker=worker,
            )
        )
        assert shadow_grades == expected_shadow, mismatch(shadow_grades, expected_shadow)
        grades = latest(
            await read_topic(
                deployment.kafka,
                deployment.topics["customer-grades"],
                lambda got: latest(got) == expected_grades,
                worker=worker,
            )
        )
        assert grades == expected_grades, mismatch(grades, expected_grades)
        stored = await redis_converges(deployment.redis_url, deployment.prefix, expected_grades)
        assert stored == expected_grades, mismatch(stored, expected_grades)
    outputs = await read_outputs(deployment)
    assert {o["policy_version"] for o in outputs} == {VERSION}


def good_and_bad(records: list[SimRecord]) -> tuple[int, Counter[str]]:
    """How many records decode as good events, and the rejection codes of the others,
    judged by the contract alone (what the dead-letter topic must show)."""
    good, bad = 0, Counter[str]()
    for topic, key, value in records:
        decoded = decode(value, topic, key)
        if isinstance(decoded, Rejection):
            bad[decoded.code] += 1
        else:
            good += 1
    return good, bad


async def test_bad_records_go_to_the_dead_letters(deployment: Deployment) -> None:
    """The simulator's faults as they reach Kafka (malformed values, keyless records, keys
    that disagree with the body) interleaved with good events: every record is accounted
    for once, as a graded event, a duplicate or a dead letter with its reason."""
    records = list(generate(100, 120, seed=5, config=SimConfig(malformed_rate=0.05)))
    _, bad = good_and_bad(records)
    assert bad["key_mismatch"] > 0
    assert sum(bad.values()) > 50
    assert any(r.key is None for r in records)
    await produce_async(records, deployment.kafka, {n: deployment.topics[n] for n in INPUTS})

    async with deployment.worker("event") as worker:
        async with asyncio.timeout(120):
            while True:
                assert worker.returncode is None, "the worker died"
                dead = await read_all(deployment.kafka, deployment.topics["dead-letters"])
                grades = await read_all(deployment.kafka, deployment.topics["customer-grades"])
                duplicates = await metric(deployment, "gradestream_duplicates_total")
                accounted = graded_events(grades) + int(duplicates) + len(dead)
                if accounted >= len(records):
                    break
                await asyncio.sleep(1)
    assert accounted == len(records)
    codes = Counter(d["rejection"]["code"] for d in dead)
    # Each contract rejection is there with its code. The clock may add too_late ones (a
    # keyless record is re-sent keyed, behind the backlog, and may arrive too late) and
    # from_the_future ones: a sparse topic read before the others (docs/worker.md,
    # "Ordering") can jump further ahead of its partition's stream time than the bound.
    for code, count in bad.items():
        assert codes[code] == count, (code, codes)
    assert set(codes) - set(bad) <= {"too_late", "from_the_future"}
    for record in dead:
        assert record["source"]["topic"] in deployment.topics.values()
        assert record["rejection"]["message"]


async def test_a_quiet_customer_is_moved_by_the_wall_clock_sweep(deployment: Deployment) -> None:
    """No event arrives after the order: only the sweep, on wall-clock time, can make
    this customer active, then silent, and raise their churn risk."""
    now = datetime.now(UTC)
    placed = (now - timedelta(days=200)).strftime("%Y-%m-%dT%H:%M:%SZ")
    customer = f"quiet-{uuid.uuid4().hex[:6]}"
    order = {
        "event_id": "e-1",
        "customer_id": customer,
        "occurred_at": placed,
        "type": "order_placed",
        "order_id": "o-1",
        "amount": 120.0,
        "currency": "USD",
    }
    record = SimRecord("orders", customer.encode(), orjson.dumps(order))
    await produce_async([record], deployment.kafka, {"orders": deployment.topics["orders"]})
    async with deployment.worker("wall") as worker:
        changes = await read_topic(
            deployment.kafka,
            deployment.topics["lifecycle-changes"],
            lambda got: any(c["stage"] == "silent" for c in got),
            within=90,
            worker=worker,
        )
    stages = [(c["previous_stage"], c["stage"], c["cause"]["kind"]) for c in changes]
    assert stages[0] == ("prospect", "new", "event")
    assert ("new", "active", "inactivity") in stages
    assert ("active", "silent", "inactivity") in stages


@pytest.mark.parametrize("deployment", ["one-topic"], indirect=True)
async def test_a_view_that_lost_its_data_is_rebuilt(deployment: Deployment, tmp_path: Path) -> None:
    """The view keeps its own positions in Redis, with the snapshots: once it has caught
    up they are the ends of customer-grades. A Redis emptied (flushed, or a new server)
    has none, and the next worker rebuilds the view from the compacted topic, although
    faust's committed offsets of customer-grades are at its end. (One topic, so that the
    grades equal replay's.)"""
    records = simulated(customers=40, days=120, seed=23)
    _, expected_grades = replay(records, tmp_path)
    rename = {name: deployment.topics[name] for name in INPUTS}
    await produce_async(records, deployment.kafka, rename)
    grades_topic = deployment.topics["customer-grades"]
    view = RedisView(aioredis.from_url(deployment.redis_url), deployment.prefix)
    try:
        async with deployment.worker("event"):
            stored = await redis_converges(deployment.redis_url, deployment.prefix, expected_grades)
            assert stored == expected_grades, mismatch(stored, expected_grades)
            ends = await end_offsets(deployment.kafka, grades_topic)

            async def caught_up() -> bool:
                return await view.positions() == {k: v for k, v in ends.items() if v}

            await wait_for(caught_up, 30)
        await clean_redis(deployment.redis_url, deployment.prefix)
        assert await view.positions() == {}
        async with deployment.worker("event", log_name="worker-2.log"):
            stored = await redis_converges(deployment.redis_url, deployment.prefix, expected_grades)
            assert stored == expected_grades, mismatch(stored, expected_grades)
    finally:
        await view.client.aclose()
