"""The `gradestream` command's own behaviour: what a user sees when something is wrong."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from typer.testing import CliRunner

from streams.cli import app


def _default_policy_text() -> str:
    return resources.files("streams.policies").joinpath("default.toml").read_text("utf-8")


def test_policy_check_refuses_an_infinite_threshold_naming_the_key(tmp_path: Path) -> None:
    # Issue 16: `min_spend = inf` on gold used to pass the check.
    policy = tmp_path / "gold-inf.toml"
    policy.write_text(_default_policy_text().replace("min_spend = 80000.0", "min_spend = inf"))
    result = CliRunner().invoke(app, ["policy", "check", str(policy)], env={"COLUMNS": "250"})
    assert result.exit_code == 2
    assert "tiers.ladder[3].min_spend: Input should be a finite number" in result.output


def test_policy_check_refuses_an_infinite_cadence(tmp_path: Path) -> None:
    policy = tmp_path / "cadence-inf.toml"
    text = _default_policy_text().replace(
        "default_cadence_days = 60.0", "default_cadence_days = inf"
    )
    policy.write_text(text)
    result = CliRunner().invoke(app, ["policy", "check", str(policy)], env={"COLUMNS": "250"})
    assert result.exit_code == 2
    assert "churn.recency.default_cadence_days: Input should be a finite number" in result.output
