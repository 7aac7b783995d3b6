"""The `gradestream` command's own behaviour: what a user sees when something is wrong."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from streams.cli import app
from streams.contracts import INPUT_TOPICS
from streams.settings import Settings
from streams.simulate import SimRecord


def _default_policy_text() -> str:
    return resources.files("streams.policies").joinpath("default.toml").read_text("utf-8")


def test_policy_check_refuses_an_infinite_threshold_naming_the_key(tmp_path: Path) -> None:
    # Issue 16: `min_spend = inf` on gold used to pass the check.
    policy = tmp_path / "gold-inf.toml"
    policy.write_text(_default_policy_text().replace("min_spend = 80000.0", "min_spend = inf"))
    result = CliRunner().invoke(app, ["policy", "check", str(policy)], env={"COLUMNS": "250"})
    assert result.exit_code == 2
    assert "tiers.ladder[3].min_spend: Input should be a finite number" in result.output


def test_policy_check_refuses_an_infinite_silence_scale(tmp_path: Path) -> None:
    policy = tmp_path / "half-days-inf.toml"
    text = _default_policy_text().replace("half_days = 60.0", "half_days = inf")
    policy.write_text(text)
    result = CliRunner().invoke(app, ["policy", "check", str(policy)], env={"COLUMNS": "250"})
    assert result.exit_code == 2
    assert "churn.recency.half_days: Input should be a finite number" in result.output


# -- simulate --kafka: the worker's settings name the topics (issue 16) ----------------------


def test_input_topics_map_every_product_topic_to_its_setting() -> None:
    settings = Settings(
        topic_orders="o-live", topic_complaints="c-live", topic_interactions="i-live"
    )
    assert settings.input_topics() == {
        "orders": "o-live",
        "complaints": "c-live",
        "interactions": "i-live",
    }
    # Every topic the simulator writes (and decode knows) has a setting.
    assert set(Settings().input_topics()) == set(INPUT_TOPICS)


def test_simulate_kafka_writes_to_the_topics_the_settings_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent: dict[str, Any] = {}

    def fake_produce(
        records: Iterable[SimRecord],
        bootstrap: str,
        rename: Mapping[str, str] | None = None,
        producer_options: Mapping[str, object] | None = None,
    ) -> dict[str, int]:
        names = Counter((rename or {}).get(topic, topic) for topic, _, _ in records)
        sent.update(bootstrap=bootstrap, options=producer_options, counts=names)
        return dict(names)

    monkeypatch.setattr("streams.produce.produce", fake_produce)
    env = {
        "COLUMNS": "250",
        "GRADESTREAM_TOPIC_ORDERS": "shop-orders",
        "GRADESTREAM_TOPIC_COMPLAINTS": "shop-complaints",
        "GRADESTREAM_TOPIC_INTERACTIONS": "shop-interactions",
    }
    args = ["simulate", "--kafka", "broker:9092", "--customers", "20", "--days", "60"]
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 0, result.output
    assert sent["bootstrap"] == "broker:9092"
    assert set(sent["counts"]) == {"shop-orders", "shop-complaints", "shop-interactions"}
    assert sent["options"] == {"security_protocol": "PLAINTEXT"}
    assert "shop-orders" in result.output


def test_simulate_kafka_refuses_bad_settings_in_one_line() -> None:
    args = ["simulate", "--kafka", "broker:9092", "--customers", "5"]
    result = CliRunner().invoke(app, args, env={"GRADESTREAM_PARTITIONS": "0"})
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        "settings refused: GRADESTREAM_PARTITIONS: Input should be greater than or equal to 1"
    ]


def test_policy_check_says_a_multi_line_parser_error_in_one_line(tmp_path: Path) -> None:
    policy = tmp_path / "broken.yaml"
    policy.write_text("policy_version: [\n  unclosed\n")
    result = CliRunner().invoke(app, ["policy", "check", str(policy)])
    assert result.exit_code == 2
    (line,) = result.output.splitlines()
    assert line.startswith(f"policy refused: {policy}: not valid YAML: ")


# -- topics: the worker's settings check (issue 16) -----------------------------------------


@pytest.mark.parametrize("command", ["create", "describe"])
def test_topics_refuse_bad_settings_in_one_line_and_warn_of_unknown_ones(command: str) -> None:
    env = {"GRADESTREAM_PARTITIONS": "0", "GRADESTREAM_CLOK": "event"}
    result = CliRunner().invoke(app, ["topics", command], env=env)
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        "warning: GRADESTREAM_CLOK is not a gradestream setting and is ignored "
        "(did you mean GRADESTREAM_CLOCK?)",
        "settings refused: GRADESTREAM_PARTITIONS: Input should be greater than or equal to 1",
    ]


def test_bootstrap_refuses_an_instant_without_offset_before_touching_kafka(tmp_path: Path) -> None:
    history = tmp_path / "history.jsonl"
    history.write_text("")
    result = CliRunner().invoke(
        app, ["bootstrap", str(history), "--until", "2024-06-01T00:00:00"], env={"COLUMNS": "250"}
    )
    assert result.exit_code == 2
    assert "has no UTC offset" in result.output
