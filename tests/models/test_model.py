"""MODEL.json (round trip, refusals naming the key) and the per-event `score`."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.models.bgnbd import (
    BgNbdParams,
    FitReport,
    expected_purchases,
    p_alive,
    p_no_purchase,
)
from streams.models.gamma_gamma import GammaGammaParams, expected_order_value
from streams.models.model import Model, ModelError, ModelFit, load_model, quiet_age, score

BG = BgNbdParams(r=0.243, alpha=4.414 * 7, a=0.793, b=2.426)  # CDNOW, in days
GG = GammaGammaParams(p=6.25, q=3.74, v=15.44)


def _report(se: dict[str, float]) -> FitReport:
    return FitReport(-1234.5, 100, True, 17, "CONVERGENCE", se)


def _model(**kw: Any) -> Model:
    fit = ModelFit(
        bgnbd=_report({"r": 0.01, "alpha": 1.5, "a": 0.1, "b": 0.4}),
        gamma_gamma=_report({"p": 0.5, "q": 0.2, "v": 2.0}),
        calibration_end="2025-01-01T00:00:00Z",
        source="history.jsonl",
        counts={"lines": 10, "customers": 3},
    )
    return Model("test-1", "USD", BG, GG, fit=fit, **kw)


def test_json_round_trip() -> None:
    model = _model(clv_horizon_days=730.0, monthly_discount=0.02)
    again = Model.from_json(model.to_json())
    assert again == model
    assert again.to_json() == model.to_json()
    assert score(again, 3, 100.0, 200.0, 50.0) == score(model, 3, 100.0, 200.0, 50.0)


def test_unidentified_standard_error_round_trips_as_null() -> None:
    fit = ModelFit(_report({"r": math.nan}), _report({}), "2025-01-01T00:00:00Z", "h.jsonl")
    text = Model("t", "USD", BG, GG, fit=fit).to_json()
    assert orjson.loads(text)["fit"]["bgnbd"]["se"]["r"] is None
    again = Model.from_json(text)
    assert again.fit is not None
    assert math.isnan(again.fit.bgnbd.se["r"])


def _set(doc: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for key in parents:
        doc = doc[key]
    if value is _DELETE:
        del doc[last]
    else:
        doc[last] = value


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("bgnbd.alpha", _DELETE, "bgnbd.alpha: missing"),
        ("bgnbd.alpha", -1.0, "bgnbd.alpha: must be a finite number > 0"),
        ("bgnbd.alpha", "31", "bgnbd.alpha: must be a number"),
        ("bgnbd.r", True, "bgnbd.r: must be a number"),
        ("bgnbd.c", 1.0, "bgnbd.c: unknown key"),
        ("gamma_gamma.q", 0.5, "gamma_gamma.q: must be > 1"),
        ("gamma_gamma", [1, 2, 3], "gamma_gamma: must be a JSON object"),
        ("colour", "blue", "colour: unknown key"),
        ("format", "lifetimes", "format: must be 'gradestream-model'"),
        ("format_version", 2, "format_version: this gradestream reads version 1"),
        ("time_unit", "week", "time_unit: must be 'day'"),
        ("currency", "usd", "currency: must be an ISO 4217 code"),
        ("model_version", "", "model_version: must be 1..128 characters"),
        ("clv.monthly_discount", 1.5, "clv.monthly_discount: must be a number in [0, 1)"),
        ("clv.horizon_days", 0, "clv.horizon_days: must be a finite number > 0"),
        ("fit.bgnbd.converged", "yes", "fit.bgnbd.converged: must be true or false"),
        ("fit.counts.lines", -1, "fit.counts.lines: must be a whole number >= 0"),
        ("fit.gamma_gamma.se.p", "big", "fit.gamma_gamma.se.p: must be a number"),
    ],
)
def test_bad_model_is_refused_naming_the_key(path: str, value: Any, message: str) -> None:
    doc = copy.deepcopy(_model().to_dict())
    _set(doc, path, value)
    with pytest.raises(ModelError) as err:
        Model.from_dict(doc)
    assert str(err.value).startswith(message)


@pytest.mark.parametrize(
    ("text", "message"),
    [(b"{not json", "(file): not valid JSON"), (b"[1, 2]", "(file): must be a JSON object")],
)
def test_unreadable_model_is_refused(text: bytes, message: str) -> None:
    with pytest.raises(ModelError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Model.from_json(text)


def test_load_model_names_the_file(tmp_path: Path) -> None:
    good = tmp_path / "MODEL.json"
    good.write_text(_model().to_json())
    assert load_model(good) == _model()
    bad = tmp_path / "BAD.json"
    bad.write_text(_model().to_json().replace('"r"', '"rr"'))
    with pytest.raises(ModelError, match=r"BAD\.json: bgnbd\.r: missing"):
        load_model(bad)
    with pytest.raises(ModelError, match="cannot read"):
        load_model(tmp_path / "absent.json")


def test_score_agrees_with_the_model_functions() -> None:
    model = Model("t", "USD", BG, GG, monthly_discount=0.0)
    for x, t_x, T, m in [(0, 0.0, 40.0, 30.0), (2, 213.0, 272.0, 40.0), (25, 300.0, 700.0, 80.0)]:
        s = score(model, x, t_x, T, m)
        assert s.p_alive == pytest.approx(p_alive(BG, x, t_x, T), rel=1e-12)
        assert s.expected_90d == pytest.approx(expected_purchases(BG, 90, x, t_x, T), rel=1e-12)
        assert s.p_no_order_90d == pytest.approx(p_no_purchase(BG, 90, x, t_x, T), rel=1e-12)
        e365 = expected_purchases(BG, 365, x, t_x, T)
        assert s.expected_365d == pytest.approx(e365, rel=1e-12)
        # Undiscounted CLV over 365 days: expected purchases times expected order value.
        assert s.clv == pytest.approx(e365 * expected_order_value(GG, x + 1, m), rel=1e-12)


def test_discounting_lowers_clv_by_at_most_the_horizon_discount() -> None:
    flat = score(Model("t", "USD", BG, GG, monthly_discount=0.0), 4, 120.0, 150.0, 60.0)
    disc = score(Model("t", "USD", BG, GG, monthly_discount=0.01), 4, 120.0, 150.0, 60.0)
    # Every period's purchases are discounted by between 1.01^-1 and 1.01^-12.
    assert flat.clv * 1.01**-12 < disc.clv < flat.clv * 1.01**-1
    assert disc[:3] == flat[:3]  # only the CLV changes
    # A longer horizon, in 24 periods, is still consistent with the undiscounted sum.
    long_flat = Model("t", "USD", BG, GG, clv_horizon_days=730.0, monthly_discount=0.0)
    s = score(long_flat, 4, 120.0, 150.0, 60.0)
    want = expected_purchases(BG, 730, 4, 120.0, 150.0) * expected_order_value(GG, 5, 60.0)
    assert s.clv == pytest.approx(want, rel=1e-12)


def test_score_clamps_impossible_inputs_instead_of_raising() -> None:
    model = _model()
    assert score(model, -3, 5.0, 10.0, 20.0) == score(model, 0, 0.0, 10.0, 20.0)
    assert score(model, 2, 50.0, 10.0, 20.0) == score(model, 2, 10.0, 10.0, 20.0)
    assert score(model, 2, 5.0, 10.0, math.nan).clv > 0  # population mean order value
    # value_orders: the mean may come from fewer orders than x + 1 (a window's worth).
    few = score(model, 9, 100.0, 120.0, 200.0, value_orders=1)
    many = score(model, 9, 100.0, 120.0, 200.0)
    assert few.clv < many.clv  # one order of 200 is trusted less than ten


def test_quiet_age_is_when_the_quiet_probability_reaches_a_level() -> None:
    model = _model()
    for x, t_x in [(0, 0.0), (3, 80.0), (20, 300.0)]:
        now = score(model, x, t_x, t_x, 50.0).p_no_order_90d
        for level in (0.5, 0.8, 0.95):
            age = quiet_age(model, x, t_x, level)
            if level <= now:
                assert age == t_x  # already there at the last order
                continue
            assert age is not None
            assert score(model, x, t_x, age, 50.0).p_no_order_90d == pytest.approx(level, abs=1e-6)
            assert score(model, x, t_x, age - 0.01, 50.0).p_no_order_90d < level
    assert quiet_age(model, 3, 80.0, 1.0) is None
