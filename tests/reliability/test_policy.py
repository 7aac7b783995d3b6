"""Policy: a bad file stops the worker at start-up naming the key; a new policy_version
re-grades customers on their next event or tick, with cause kind policy_change."""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from streams.core.policy import load_policy
from streams.produce import produce_async
from tests.conftest import REPO
from tests.integration.support import (
    INPUTS,
    Deployment,
    latest,
    read_all,
    read_topic,
    replay,
    simulated,
)

pytestmark = pytest.mark.integration

DEFAULT = REPO / "streams" / "policies" / "default.toml"


def variant(tmp: Path, name: str, old: str, new: str) -> Path:
    text = DEFAULT.read_text()
    assert text.count(old) == 1, old
    path = tmp / name
    path.write_text(text.replace(old, new))
    return path


async def test_a_bad_policy_stops_start_up_naming_the_key(
    deployment: Deployment, tmp_path: Path
) -> None:
    bad = variant(tmp_path, "bad.toml", "min_orders = 2 ", 'min_orders = "two" ')
    env = deployment.env() | {"GRADESTREAM_POLICY": str(bad)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "streams.cli", "worker", env=env, cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode not in (0, None)
    assert b"min_orders" in output, output.decode(errors="replace")[-2000:]


async def test_a_new_policy_version_regrades_with_cause_policy_change(
    deployment: Deployment, tmp_path: Path, figures: dict[str, Any]
) -> None:
    # v2: one order in the window is enough for "regular" (default: two).
    v2 = variant(tmp_path, "v2.toml", "min_orders = 2 ", "min_orders = 1 ")
    v2.write_text(v2.read_text().replace('policy_version = "default-2"', 'policy_version = "r-2"'))
    assert load_policy(v2).policy_version == "r-2"
    records = simulated(customers=80, days=200, seed=51)
    cut = int(len(records) * 0.8)
    first, rest = records[:cut], records[cut:]
    rename = {n: deployment.topics[n] for n in INPUTS}
    (tmp_path / "a").mkdir()
    _, expected_first = replay(first, tmp_path / "a")
    grades_topic = deployment.topics["customer-grades"]

    await produce_async(first, deployment.kafka, rename)
    async with deployment.worker("event", log_name="worker-v1.log") as worker:
        await read_topic(
            deployment.kafka,
            grades_topic,
            lambda got: latest(got) == expected_first,
            worker=worker,
        )
    deployment.extra_env["GRADESTREAM_POLICY"] = str(v2)
    await produce_async(rest, deployment.kafka, rename)
    later = {r.key.decode() for r in rest if r.key is not None}
    async with deployment.worker("event", log_name="worker-v2.log") as worker:
        grades = latest(
            await read_topic(
                deployment.kafka,
                grades_topic,
                lambda got: all(
                    latest(got).get(c, {}).get("policy_version") == "r-2" for c in later
                ),
                worker=worker,
            )
        )
    changes = await read_all(deployment.kafka, deployment.topics["tier-changes"])
    by_policy = [c for c in changes if c["cause"]["kind"] == "policy_change"]
    seen = Counter(
        (c["cause"]["kind"], c["policy_version"], c["previous_tier"], c["tier"]) for c in changes
    )
    assert by_policy, f"no tier change with cause policy_change: {seen}"
    assert all(c["policy_version"] == "r-2" for c in by_policy)
    assert all((c["previous_tier"], c["tier"]) == ("potential", "regular") for c in by_policy)
    for customer in later:
        assert grades[customer]["policy_version"] == "r-2"
    figures.update(
        regraded=sum(1 for g in grades.values() if g["policy_version"] == "r-2"),
        customers=len(grades),
        policy_change_tier_changes=len(by_policy),
    )
