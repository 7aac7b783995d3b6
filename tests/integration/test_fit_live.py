"""`gradestream fit --live` against the real broker: the states it reads from the worker's
table changelog are the ones replay reaches, and the fit says when there is too little."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import orjson
import pytest

from streams.contracts import parse
from streams.core.policy import load_policy
from streams.models.live import read_changelog, summarize_states
from streams.models.model import Model
from streams.models.unfitted import Unfitted, load_model_file
from streams.produce import produce_async
from streams.replay import Replayer
from streams.simulate import SimRecord
from tests.conftest import REPO, TopicFactory
from tests.integration.support import (
    INPUTS,
    clean_redis,
    latest,
    make_deployment,
    read_topic,
    replay,
    simulated,
)


def _replayed_states(records: list[SimRecord]) -> Replayer:
    replayer = Replayer(load_policy(), lambda _: None, lambda _: None, partitions=4)
    replayer.feed_chunk([(i, value, parse(value)) for i, (_, _, value) in enumerate(records, 1)])
    return replayer


async def _fit(env: dict[str, str], out: Path, *extra: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "streams.cli", "fit", "--live", "--out", str(out), *extra),
        env=env,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    text, _ = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, text.decode()
    return text.decode()


async def test_fit_live_reads_the_workers_changelog(
    kafka_bootstrap: str, redis_url: str, new_topic: TopicFactory, tmp_path: Path
) -> None:
    deployment = await make_deployment(kafka_bootstrap, redis_url, new_topic, tmp_path, True)
    try:
        records = simulated(customers=150, days=200, seed=23)
        _, expected_grades = replay(records, tmp_path)
        await produce_async(records, deployment.kafka, {n: deployment.topics[n] for n in INPUTS})
        async with deployment.worker("event") as worker:
            grades = latest(
                await read_topic(
                    deployment.kafka,
                    deployment.topics["customer-grades"],
                    lambda got: latest(got) == expected_grades,
                    worker=worker,
                )
            )
            assert grades == expected_grades

        # The states in the changelog are replay's, customer by customer.
        topic = f"{deployment.prefix}-app-customers-changelog"
        states, counts = await read_changelog(deployment.kafka, topic)
        assert counts["markers"] > 0  # the progress markers are skipped, not decoded
        assert counts["unreadable"] == 0
        replayed = _replayed_states(records).states
        assert {s.customer_id for s in states} == set(replayed)
        cut = max(s.as_of for s in replayed.values()) + 1
        live = summarize_states(states, cut)
        want = summarize_states(replayed.values(), cut)
        order = {c: i for i, c in enumerate(want.customer_ids)}
        assert sorted(live.customer_ids) == sorted(want.customer_ids)
        for i, cid in enumerate(live.customer_ids):
            j = order[cid]
            got = (live.x[i], live.t_x[i], live.T[i], live.n[i], live.mean_value[i])
            assert got == (want.x[j], want.t_x[j], want.T[j], want.n[j], want.mean_value[j])

        # Too little data (fewer than 200 customers here): said, and a file without
        # parameters that policies read as "no model yet".
        out = tmp_path / "MODEL.json"
        env = deployment.env()
        text = await _fit(env, out, "--min-customers", "200")
        assert "too little data" in text
        assert isinstance(load_model_file(out), Unfitted)
        # Enough for a (small) fit when the thresholds allow it; a second run keeps it.
        text = await _fit(env, out, "--min-customers", "50", "--min-repeat-customers", "10")
        model = load_model_file(out)
        assert isinstance(model, Model), text
        assert model.fit is not None
        assert model.fit.source == topic
        assert model.fit.counts["customers"] == len(want.customer_ids)
        again = await _fit(env, out, "--min-customers", "50", "--min-repeat-customers", "10")
        assert "kept" in again
        assert orjson.loads(out.read_bytes())["model_version"] == model.model_version
    finally:
        await clean_redis(redis_url, deployment.prefix)


async def test_fit_live_names_a_missing_changelog(kafka_bootstrap: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        await read_changelog(kafka_bootstrap, "test-no-such-changelog-topic", within=30)
