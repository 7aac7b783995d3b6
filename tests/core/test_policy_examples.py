"""The example policy with a churn model (streams/policies/examples/): checked by the CLI,
used by replay, and its model file is exactly what its documented commands produce."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from streams.cli import app
from streams.core.policy import load_policy
from streams.replay import replay_file
from tests.core.schemas import errors

EXAMPLES = Path(__file__).resolve().parents[2] / "streams" / "policies" / "examples"
POLICY = EXAMPLES / "with-model.toml"
VERSION = "with-model-2+bgnbd-gg-6acd78ef"


def _cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    return result.output


def test_policy_check_accepts_the_example() -> None:
    assert "is a valid policy, version with-model-2" in _cli("policy", "check", str(POLICY))
    p = load_policy(POLICY)
    assert p.version == VERSION
    assert p.model is not None
    assert p.model.fit is not None
    assert (p.model.fit.bgnbd.converged, p.model.fit.gamma_gamma.converged) == (True, True)


def test_the_example_model_is_what_the_documented_commands_fit(tmp_path: Path) -> None:
    history, model = tmp_path / "history.jsonl", tmp_path / "model-sim.json"
    _cli("simulate", "--customers", "5000", "--days", "730", "--seed", "1", "--out", str(history))
    _cli("fit", str(history), "--out", str(model))
    assert model.read_bytes() == (EXAMPLES / "model-sim.json").read_bytes()


@pytest.fixture(scope="module")
def replayed(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    tmp = tmp_path_factory.mktemp("replay")
    source = tmp / "in.jsonl"
    _cli("simulate", "--customers", "150", "--days", "365", "--seed", "3", "--out", str(source))
    out, snap, dead = tmp / "out.jsonl", tmp / "snap.jsonl", tmp / "dead.jsonl"
    replay_file(source, load_policy(POLICY), out, snap, dead)
    return _read(out), _read(snap)


def _read(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_replay_uses_the_model(replayed: tuple[list[dict[str, Any]], list[dict[str, Any]]]) -> None:
    outputs, snapshots = replayed
    assert len(snapshots) > 100
    assert {o["policy_version"] for o in outputs} == {VERSION}
    assert {g["policy_version"] for g in snapshots} == {VERSION}
    blocks = [g["churn"]["model"] for g in snapshots]
    assert {b["model_version"] for b in blocks} == {"bgnbd-gg-6acd78ef"}
    buyers = [g for g in snapshots if g["lifecycle"] != "prospect"]
    assert buyers
    assert all(g["churn"]["model"]["p_no_order_90d"] is not None for g in buyers)
    # Every buyer's score says why, the model's part among the reasons.
    assert all(
        "model_quiet" in {r["code"] for r in g["churn"]["reasons"]}
        for g in buyers
        if g["churn"]["score"] > 0
    )
    for g in snapshots:
        assert errors("customer-grades", g) == []
