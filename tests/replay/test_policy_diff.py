"""`gradestream policy diff` on a simulated year, checked against two separate replays."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from streams.cli import app
from streams.core.policy import load_policy
from streams.policy_diff import GRADES, categories
from streams.replay import replay_file
from streams.simulate import SimConfig, generate, write_jsonl

REPO = Path(__file__).resolve().parents[2]
DEFAULT = REPO / "streams" / "policies" / "default.toml"
VERSION = load_policy(DEFAULT).policy_version


def _lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def _replay(history: Path, policy: Path, where: Path) -> tuple[list[Any], dict[str, Any]]:
    """One plain replay (one process, the CLI's default partitions): outputs and grades."""
    where.mkdir()
    out, grades = where / "out.jsonl", where / "grades.jsonl"
    replay_file(history, load_policy(policy), out, grades, where / "dlq.jsonl", partitions=4)
    return _lines(out), {g["customer_id"]: g for g in _lines(grades)}


@pytest.fixture(scope="module")
def year(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A simulated year with more big spenders than the default mix (so that some sit
    between 40,000 and 50,000), and the default policy with silver at 40,000."""
    where = tmp_path_factory.mktemp("year")
    history = where / "year.jsonl"
    config = SimConfig(keys=False, big_spender_rate=0.15)
    write_jsonl(generate(400, 365, seed=5, config=config), history)
    silver = where / "silver-40k.toml"
    silver.write_text(
        DEFAULT.read_text()
        .replace(f'policy_version = "{VERSION}"', 'policy_version = "silver-40k"')
        .replace("min_spend = 50000.0", "min_spend = 40000.0")
    )
    return history, silver


def test_policy_diff_counts_what_two_replays_show(year: tuple[Path, Path], tmp_path: Path) -> None:
    history, silver = year
    out = tmp_path / "diff"
    args = ["policy", "diff", str(DEFAULT), str(silver), str(history), "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--jobs", "2", "--json"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert json.loads(result.stdout) == report
    assert f"tier: customers by {VERSION} (rows)" in result.output  # the rich tables

    old_out, old = _replay(history, DEFAULT, tmp_path / "old")
    new_out, new = _replay(history, silver, tmp_path / "new")
    assert set(old) == set(new)
    assert report["customers"] == len(old)
    assert (report["old"]["policy_version"], report["new"]["policy_version"]) == (
        VERSION,
        "silver-40k",
    )

    # Moves: the matrices hold, per grade, the customers by (old, new) value.
    for grade in GRADES:
        want = Counter((old[c][grade], new[c][grade]) for c in old)
        got = {
            (row, col): n for row, cols in report["moves"][grade].items() for col, n in cols.items()
        }
        assert {k: n for k, n in got.items() if n} == dict(want), grade
    assert report["moves"]["tier"]["regular"]["silver"] > 0  # the lower threshold shows

    # Alerts raised per day, under each policy.
    def raised(outputs: list[dict[str, Any]]) -> Counter[str]:
        return Counter(
            o["occurred_at"][:10]
            for o in outputs
            if o["type"] == "churn_risk_changed" and o["alert"] == "raised"
        )

    old_alerts, new_alerts = raised(old_out), raised(new_out)
    assert {d["day"]: d["old"] for d in report["alerts_per_day"]} == {
        day: old_alerts[day] for day in old_alerts | new_alerts
    }
    assert {d["day"]: d["new"] for d in report["alerts_per_day"]} == {
        day: new_alerts[day] for day in old_alerts | new_alerts
    }
    assert report["old"]["outputs"] == dict(Counter(o["type"] for o in old_out))
    assert report["new"]["outputs"] == dict(Counter(o["type"] for o in new_out))

    # The customers whose grades differ, with both grades.
    differ = _lines(out / "customers.jsonl")
    assert [d["customer_id"] for d in differ] == sorted(
        c for c in old if categories(old[c]) != categories(new[c])
    )
    assert report["differ"] == len(differ) > 0
    for line in differ:
        assert (line["old"], line["new"]) == (old[line["customer_id"]], new[line["customer_id"]])


def test_a_refused_policy_is_a_usage_error(year: tuple[Path, Path], tmp_path: Path) -> None:
    history, _ = year
    bad = tmp_path / "bad.toml"
    bad.write_text(DEFAULT.read_text().replace("warning_days = 14", "warning_days = -1"))
    args = ["policy", "diff", str(DEFAULT), str(bad), str(history), "--out", str(tmp_path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "tiers.warning_days" in result.output
