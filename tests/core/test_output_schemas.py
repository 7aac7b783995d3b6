"""Output events and snapshots against schemas/ (and the examples kept there).

The conftest checks every output of every core test; this file adds the cases the other
tests don't reach and pins the examples.
"""

from __future__ import annotations

import tomllib
from importlib import resources

import orjson
import pytest

from streams.core.engine import OUTPUT_TOPICS, advance, regrade_for_policy, snapshot
from streams.core.policy import Policy, policy_from_dict
from tests.core.builders import DAY, T0, complaint, interaction, order, run
from tests.core.schemas import OUTPUT_SCHEMAS, SCHEMAS, errors


def test_every_output_type_has_a_schema() -> None:
    assert set(OUTPUT_TOPICS.values()) | {"customer-grades"} == set(OUTPUT_SCHEMAS)


@pytest.mark.parametrize("name", OUTPUT_SCHEMAS)
def test_examples(name: str) -> None:
    valid = (SCHEMAS / "examples" / f"{name}.valid.jsonl").read_bytes().splitlines()
    invalid = (SCHEMAS / "examples" / f"{name}.invalid.jsonl").read_bytes().splitlines()
    assert valid
    assert invalid
    for line in valid:
        assert errors(name, orjson.loads(line)) == []
    for line in invalid:
        assert errors(name, orjson.loads(line)) != [], line


def test_a_busy_life_validates(policy: Policy) -> None:
    s, out = run(
        [
            order("e1", T0, 3500, oid="A", currency="EUR"),
            interaction("e2", T0 + DAY, "survey_response", nps=3, csat=1, ces=6),
            complaint("e3", T0 + 2 * DAY, "complaint_opened", "K", "high", "billing"),
            complaint("e4", T0 + 3 * DAY, "complaint_escalated", "K", "high", "billing"),
            # Enough severe complaints to raise a churn alert.
            *[
                complaint(f"k{i}", T0 + 3 * DAY, "complaint_opened", f"K{i}", "high")
                for i in range(5)
            ],
            order("e5", T0 + 4 * DAY, 90_000, oid="B"),
            order("e6", T0 + 5 * DAY, 90_000, oid="B", kind="order_cancelled"),
            *[interaction(f"i{i}", T0 + i * DAY, "page_view") for i in range(6, 30)],
            order("e7", T0 + 400 * DAY, 10, oid="C"),
        ],
        policy,
        until=T0 + 1200 * DAY,
    )
    assert {o["type"] for o in out} == set(OUTPUT_TOPICS)
    assert errors("customer-grades", snapshot(s, policy)) == []


def test_policy_change_outputs_validate(policy: Policy) -> None:
    s, _ = run([order("e1", T0, 4000)], policy)
    doc = tomllib.loads(
        resources.files("streams.policies").joinpath("default.toml").read_text("utf-8")
    )
    doc["policy_version"] = "stricter-1"
    doc["tiers"]["ladder"][1]["min_single_order"] = 5000.0
    out = regrade_for_policy(s, T0 + DAY, policy_from_dict(doc))
    assert [(o["type"], o["tier"], o["cause"]) for o in out] == [
        ("tier_changed", "potential", {"kind": "policy_change"})
    ]
    assert out[0]["policy_version"] == "stricter-1"
    assert s.policy_version == "stricter-1"
    # Back to the old policy: apply/advance notice the version and re-grade by themselves.
    back = advance(s, T0 + 2 * DAY, policy)
    assert [(o["tier"], o["cause"]["kind"]) for o in back] == [("regular", "policy_change")]
