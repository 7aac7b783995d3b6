"""Order history -> per-customer summary -> fitted model, and the `fit` command."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import orjson
import pytest
from rich.console import Console

from streams.models import bgnbd
from streams.models.bgnbd import FitReport
from streams.models.fitting import fit_command, history_summary
from streams.models.history import (
    FitError,
    TooLittleData,
    fit_history,
    read_history,
    summarize,
    to_epoch,
)
from streams.models.model import Model, load_model, score
from streams.simulate import SimConfig, generate, write_jsonl

_seq = iter(range(1_000_000))


def _ev(kind: str, cid: str, when: str) -> dict[str, Any]:
    return {"event_id": f"e{next(_seq)}", "customer_id": cid, "occurred_at": when, "type": kind}


def _order(
    kind: str, cid: str, when: str, oid: str, amount: float, cur: str = "USD"
) -> dict[str, Any]:
    ev = _ev(kind, cid, when)
    ev.update(order_id=oid, amount=amount, currency=cur)
    return ev


def _write(path: Path, lines: list[dict[str, Any] | bytes]) -> Path:
    path.write_bytes(
        b"\n".join(x if isinstance(x, bytes) else orjson.dumps(x) for x in lines) + b"\n"
    )
    return path


def test_summary_follows_the_order_rules(tmp_path: Path) -> None:
    dup = _order("order_placed", "a", "2024-01-11T00:00:00Z", "a2", 30.0)
    lines: list[dict[str, Any] | bytes] = [
        _order("order_placed", "a", "2024-01-01T00:00:00Z", "a1", 100.0),
        dup,
        dup,  # the same event again: counted once
        _order("order_refunded", "a", "2024-01-12T00:00:00Z", "a2", 10.0),  # net 20
        _order("order_placed", "a", "2024-01-21T00:00:00+01:00", "a3", 50.0),  # 20th, 23:00Z
        _order("order_cancelled", "a", "2024-01-21T10:00:00Z", "a3", 50.0),  # a3 never counts
        _order("order_placed", "a", "2024-02-05T00:00:00Z", "a4", 40.0),  # after the cut
        # Refund arriving before its order in the file (a late event) still applies.
        _order("order_refunded", "b", "2024-01-20T00:00:00Z", "b1", 500.0),  # more than paid
        _order("order_placed", "b", "2024-01-10T00:00:00Z", "b1", 100.0, "EUR"),
        _order("order_placed", "c", "2024-01-15T00:00:00Z", "c1", 10.0, "XXX"),  # no rate
        _order("order_placed", "d", "2024-02-10T00:00:00Z", "d1", 10.0),  # first after cut
        _order("order_refunded", "e", "2024-01-10T00:00:00Z", "e0", 10.0),  # unknown order
        _ev("page_view", "a", "2024-01-02T00:00:00Z"),
        {**_order("order_placed", "f", "2024-01-02T00:00:00Z", "f1", 1.0), "amount": "1.00"},
        {**_order("order_placed", "f", "2024-01-02T00:00:00", "f2", 1.0)},  # naive time
        b'{"truncated": ',
        b"[1, 2]",
    ]
    path = _write(tmp_path / "h.jsonl", lines)
    history = read_history(path, rates={"EUR": 1.1})
    cut = to_epoch("2024-02-01T00:00:00Z")
    s = summarize(history, cut, to_epoch("2024-03-01T00:00:00Z"))
    rows = {cid: i for i, cid in enumerate(s.customer_ids)}
    assert set(rows) == {"a", "b"}
    a, b = rows["a"], rows["b"]
    assert (s.x[a], s.t_x[a], s.T[a], s.n[a]) == (1.0, 10.0, 31.0, 2.0)
    assert s.mean_value[a] == pytest.approx((100.0 + 20.0) / 2)
    assert s.holdout[a] == 1.0
    assert (s.x[b], s.t_x[b], s.T[b], s.mean_value[b]) == (0.0, 0.0, 22.0, 0.0)
    c = s.counts
    assert c["duplicates"] == 1
    assert c["skipped:unknown_currency"] == 1
    assert c["skipped:order_refunded_without_order"] == 1
    assert c["skipped:not_an_order"] == 1
    assert c["skipped:bad_order_event"] == 2
    assert c["skipped:invalid_json"] == 1
    assert c["skipped:not_an_object"] == 1
    assert c["customers_first_order_after_cut"] == 1
    assert c["lines"] == len(lines)


def test_a_cancellation_after_the_cut_is_not_known_at_the_cut(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "h.jsonl",
        [
            _order("order_placed", "a", "2024-01-01T00:00:00Z", "a1", 10.0),
            _order("order_placed", "a", "2024-01-30T00:00:00Z", "a2", 30.0),
            _order("order_cancelled", "a", "2024-02-02T00:00:00Z", "a2", 30.0),
        ],
    )
    history = read_history(path)
    before = summarize(history, to_epoch("2024-02-01T00:00:00Z"))
    after = summarize(history, to_epoch("2024-02-03T00:00:00Z"))
    assert (before.x[0], before.mean_value[0]) == (1.0, 20.0)
    assert (after.x[0], after.mean_value[0]) == (0.0, 10.0)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("hist") / "history.jsonl"
    # Fewer interactions than the default: only orders matter here, and it keeps this fast.
    write_jsonl(generate(1500, 365, seed=5, config=SimConfig(interactions_per_year=4.0)), path)
    return path


def test_fit_history_on_simulated_events(simulated: Path) -> None:
    model = fit_history(simulated, rates={"EUR": 1.08, "GBP": 1.27})
    assert model.fit is not None
    assert model.fit.bgnbd.converged
    assert model.fit.gamma_gamma.converged
    assert model.fit.source == "history.jsonl"
    assert model.fit.counts["customers"] > 1000
    assert "skipped:unknown_currency" not in model.fit.counts
    # The simulator's ordinary customers buy ~4 times a year at a median of ~60 USD: the
    # fitted population should be in that neighbourhood (it is not a BG/NBD world exactly).
    rate = bgnbd.unconditional_expected_purchases(model.bgnbd, 365.0)
    assert 1.0 < rate < 8.0
    assert 30.0 < model.gamma_gamma.population_mean() < 300.0
    # Without rates, EUR and GBP orders are skipped and counted, not guessed.
    usd_only = fit_history(simulated)
    assert usd_only.fit is not None
    assert usd_only.fit.counts["skipped:unknown_currency"] > 0


def test_fit_command_writes_the_model_and_prints_a_report(simulated: Path, tmp_path: Path) -> None:
    out = tmp_path / "MODEL.json"
    buf = io.StringIO()
    console = Console(file=buf, width=120, color_system=None)
    summary = history_summary(simulated, "2024-10-01T00:00:00Z", rates={"EUR": 1.08, "GBP": 1.27})
    outcome = fit_command(summary, out, source=simulated.name, console=console)
    model = outcome.model
    assert outcome.action == "written"
    assert isinstance(model, Model)
    assert load_model(out) == model
    assert model.fit is not None
    assert model.fit.calibration_end == "2024-10-01T00:00:00Z"
    text = buf.getvalue()
    for needle in ("alpha (days)", "v (USD)", "yes", "spend_customers", "wrote"):
        assert needle in text
    # The written model scores.
    assert 0.0 < score(model, 3, 60.0, 200.0, 50.0).p_alive < 1.0


def test_fit_command_does_not_write_an_unconverged_model(
    simulated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_fit = bgnbd.fit

    def failing(*args: Any, **kw: Any) -> tuple[bgnbd.BgNbdParams, FitReport]:
        params, rep = real_fit(*args, **kw)
        return params, FitReport(rep.log_likelihood, rep.n_customers, False, 15000, "ABNORMAL", {})

    monkeypatch.setattr(bgnbd, "fit", failing)
    out = tmp_path / "MODEL.json"
    quiet = Console(file=io.StringIO())
    summary = history_summary(simulated)
    with pytest.raises(FitError, match="BG/NBD did not converge"):
        fit_command(summary, out, source="h", console=quiet)
    assert not out.exists()
    fit_command(summary, out, source="h", allow_unconverged=True, console=quiet)
    assert out.exists()


def test_too_little_history_is_refused(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "h.jsonl", [_order("order_placed", "a", "2024-01-01T00:00:00Z", "1", 5.0)]
    )
    with pytest.raises(TooLittleData, match="too few"):
        fit_history(path)
    with pytest.raises(ValueError, match="RFC 3339"):
        fit_history(path, "yesterday")
