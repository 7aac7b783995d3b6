"""`gradestream fit`'s decisions: too little data, a re-fit that barely moves, one that
does; and the fit's input from the live state (the changelog's customer states)."""

from __future__ import annotations

import io
import tomllib
from importlib import resources
from pathlib import Path

import pytest
from rich.console import Console

from streams.contracts import parse
from streams.core.engine import apply, new_state
from streams.core.policy import load_policy
from streams.core.state import CustomerState
from streams.models.fitting import fit_command, history_summary
from streams.models.history import Summary, read_history, summarize, to_epoch
from streams.models.live import summarize_states
from streams.models.model import Model
from streams.models.unfitted import Unfitted, load_model_file
from streams.replay import Replayer
from streams.simulate import SimConfig, generate, write_jsonl
from tests.core.builders import DAY, T0, order


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fit") / "history.jsonl"
    write_jsonl(generate(1500, 365, seed=5, config=SimConfig(interactions_per_year=4.0)), path)
    return path


def _quiet() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, width=200, color_system=None), buf


def _policy_file(tmp: Path, model_file: str) -> Path:
    text = resources.files("streams.policies").joinpath("default.toml").read_text("utf-8")
    doc = tomllib.loads(text)
    assert doc["policy_version"] == "default-2"
    text += f'\n[churn.model]\npath = "{model_file}"\nweight = 0.3\n'
    path = tmp / "policy.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_too_little_data_says_so_and_the_policy_falls_back(tmp_path: Path) -> None:
    history = tmp_path / "h.jsonl"
    write_jsonl(generate(40, 120, seed=3), history)
    out = tmp_path / "MODEL.json"
    console, buf = _quiet()
    outcome = fit_command(history_summary(history), out, source="h.jsonl", console=console)
    assert outcome.action == "unfitted"
    assert "too little data" in buf.getvalue()
    unfitted = load_model_file(out)
    assert isinstance(unfitted, Unfitted)
    assert "too few to fit" in unfitted.reason
    # A policy naming it loads, and grades with the model-free score, version unchanged.
    policy = load_policy(_policy_file(tmp_path, "MODEL.json"))
    assert (policy.model, policy.compiled.model, policy.version) == (None, None, "default-2")
    assert policy.unfitted == unfitted.reason
    s = new_state("c")
    apply(s, order("e1", T0, 100, cid="c"), policy)
    default = load_policy()
    t = new_state("c")
    apply(t, order("e1", T0, 100, cid="c"), default)
    assert s.as_of == t.as_of


def test_a_refit_that_barely_moves_keeps_the_model(simulated: Path, tmp_path: Path) -> None:
    out = tmp_path / "MODEL.json"
    console, buf = _quiet()
    first = fit_command(history_summary(simulated), out, source="h", console=console)
    assert first.action == "written"
    written = out.read_bytes()
    # A day more of the same history: the parameters move a little, no signal by 0.02.
    later = history_summary(simulated, "2025-01-02T00:00:00Z")
    again = fit_command(later, out, source="h", console=console)
    assert again.action == "kept"
    assert again.change is not None
    assert again.change < 0.02
    assert out.read_bytes() == written  # same model_version: nothing re-graded
    assert "kept" in buf.getvalue()
    # Half the history: the signals move, and the new model is written.
    half = history_summary(simulated, "2024-07-01T00:00:00Z")
    moved = fit_command(half, out, source="h", console=console)
    assert moved.action == "written"
    assert moved.change is not None
    assert moved.change >= 0.02
    assert isinstance(moved.model, Model)
    assert isinstance(first.model, Model)
    assert moved.model.model_version != first.model.model_version
    # Tolerance 0: always written.
    assert fit_command(half, out, source="h", tolerance=0.0, console=console).action == "written"


def _states(path: Path, cut: int) -> dict[str, CustomerState]:
    """Every customer's state after the events before `cut`, replayed as the worker would
    grade them (the states its table, and so its changelog, would hold)."""
    replayer = Replayer(load_policy(), lambda _: None, lambda _: None)
    lines = []
    with path.open("rb") as f:
        for number, line in enumerate(f, start=1):
            raw = line.rstrip(b"\n")
            parsed = parse(raw)
            try:
                before = to_epoch(parsed["occurred_at"]) < cut
            except (KeyError, TypeError, ValueError):
                before = False  # (a malformed record: the history reader skips it too)
            if before:
                lines.append((number, raw, parsed))
    replayer.feed_chunk(lines)
    return replayer.states


def test_the_live_summary_matches_the_history_summary() -> None:
    s = new_state("a")
    for i, day in enumerate((0, 30, 90)):
        apply(s, order(f"e{i}", T0 + day * DAY, 50, cid="a"), load_policy())
    one = new_state("b")
    apply(one, order("x", T0 + 10 * DAY, 80, cid="b"), load_policy())
    prospect = new_state("p")
    cut = T0 + 100 * DAY
    summary = summarize_states([s, one, prospect], cut, {"records": 3})
    assert summary.customer_ids == ("a", "b")
    assert summary.x.tolist() == [2.0, 0.0]
    assert summary.t_x.tolist() == [90.0, 0.0]
    assert summary.T.tolist() == [100.0, 90.0]
    assert summary.n.tolist() == [3.0, 1.0]
    assert summary.mean_value.tolist() == [50.0, 80.0]
    assert summary.counts == {"records": 3, "customers": 2}
    # Without a cut: the latest state's time.
    assert summarize_states([s, one]).calibration_end == float(s.as_of)


def _by_customer(s: Summary) -> dict[str, tuple[float, float, float]]:
    rows = zip(s.x.tolist(), s.t_x.tolist(), s.T.tolist(), strict=True)
    return dict(zip(s.customer_ids, rows, strict=True))


def test_the_live_summary_of_a_simulated_history(simulated: Path) -> None:
    """States folded from the history's orders give the history reader's x, t_x and T."""
    cut = 1_727_740_800  # 2024-10-01
    by_history = summarize(read_history(simulated, {"EUR": 1.08, "GBP": 1.27}), cut)
    states = _states(simulated, cut)
    by_states = summarize_states(states.values(), cut)
    hist = _by_customer(by_history)
    live = _by_customer(by_states)
    assert hist.keys() == live.keys()
    diffs = [k for k in hist if hist[k] != pytest.approx(live[k], abs=1e-6)]
    assert len(diffs) <= len(hist) // 100  # (late events the lateness bound refused)
