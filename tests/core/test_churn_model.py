"""Churn risk with a fitted model (policy `[churn.model]`): loading, the noisy-OR score,
the reasons, the snapshot's model block and the due times under the model's curve."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from streams.core.engine import advance, apply, snapshot
from streams.core.errors import PolicyError
from streams.core.grading import grade, next_due
from streams.core.policy import load_policy, policy_from_dict
from streams.core.state import decode, encode
from streams.models.bgnbd import p_alive, p_no_purchase
from streams.models.model import score
from tests.core.builders import DAY, T0, Event, at, complaint, interaction, order, run
from tests.core.models import MODEL, default_doc, model_doc, model_policy

POLICY = model_policy()


def _reasons(g: dict[str, Any]) -> list[tuple[str, str]]:
    return [(r["code"], r["message"]) for r in g["churn"]["reasons"]]


def _write(tmp: Path, doc: dict[str, Any], model: dict[str, Any] | None = None) -> Path:
    if model is not None:
        (tmp / "models").mkdir(exist_ok=True)
        (tmp / "models" / "m.json").write_bytes(orjson.dumps(model))
    path = tmp / "policy.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


# --- the policy ----------------------------------------------------------------------------


def test_the_model_is_read_relative_to_the_policy_file(tmp_path: Path) -> None:
    doc = model_doc()
    doc["churn"]["model"]["path"] = "models/m.json"
    p = load_policy(_write(tmp_path, doc, MODEL.to_dict()))
    assert p.model == MODEL
    assert p.compiled.model == MODEL
    # Outputs carry the model's version after the policy's: a new model re-grades.
    assert p.version == p.compiled.version == "model-p_no_order_90d-0.45+bgnbd-gg-test"
    doc["churn"]["model"]["path"] = str(tmp_path / "models" / "m.json")  # absolute
    assert load_policy(_write(tmp_path, doc)).model == MODEL


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (None, "churn.model.path: (file): cannot read"),
        ({**MODEL.to_dict(), "bgnbd": {"r": 1, "alpha": -1, "a": 1, "b": 1}}, "bgnbd.alpha"),
        ({**MODEL.to_dict(), "colour": "red"}, "colour: unknown key"),
        ({**MODEL.to_dict(), "currency": "EUR"}, "is in EUR, the policy's base currency is USD"),
    ],
)
def test_a_bad_model_file_is_a_policy_error_naming_the_key(
    tmp_path: Path, model: dict[str, Any] | None, message: str
) -> None:
    doc = model_doc()
    doc["churn"]["model"]["path"] = "models/m.json"
    path = _write(tmp_path, doc, model)
    with pytest.raises(PolicyError) as err:
        load_policy(path)
    assert str(err.value).startswith(f"{path}: invalid policy: churn.model.path: ")
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("weight", 1.5, "churn.model.weight: Input should be less than or equal to 1"),
        ("signal", "p_dead", "churn.model.signal: Input should be 'p_no_order_90d' or 'p_alive'"),
        ("path", "", "churn.model.path: String should have at least 1 character"),
        ("colour", "red", "churn.model.colour: Extra inputs are not permitted"),
    ],
)
def test_bad_model_keys_are_named(key: str, value: Any, message: str) -> None:
    doc = model_doc()
    doc["churn"]["model"][key] = value
    with pytest.raises(PolicyError, match=message.replace("(", r"\(").replace(")", r"\)")):
        policy_from_dict(doc, model=MODEL)


def test_with_a_model_the_weights_need_not_add_up_to_one() -> None:
    doc = model_doc()
    doc["churn"]["weights"] = {"recency": 0.0, "complaints": 0.5, "surveys": 0.5, "engagement": 0.5}
    assert policy_from_dict(doc, model=MODEL).compiled.w_complaints == 0.5
    del doc["churn"]["model"]
    with pytest.raises(PolicyError, match=r"churn\.weights\.recency: the four weights must add up"):
        policy_from_dict(doc)


def test_the_signal_defaults_to_p_no_order_90d() -> None:
    doc = model_doc()
    del doc["churn"]["model"]["signal"]
    assert not policy_from_dict(doc, model=MODEL).compiled.model_p_alive


def test_without_a_model_nothing_changes() -> None:
    p = load_policy()
    assert (p.model, p.version, p.compiled.model, p.compiled.w_model) == (
        None,
        "default-1",
        None,
        0.0,
    )
    with pytest.raises(PolicyError, match=r"churn\.model: a model was given"):
        policy_from_dict(default_doc(), model=MODEL)


# --- the score and its reasons ------------------------------------------------------------


def _quiet(x: int, t_x: float, age: float) -> float:
    return p_no_purchase(MODEL.bgnbd, 90.0, x, t_x, age)


@pytest.mark.parametrize("days", [0, 30, 200, 900])
def test_the_model_signal_replaces_recency(days: int) -> None:
    s, _ = run([order("e1", T0, 100)], POLICY)
    g = grade(s, T0 + days * DAY, POLICY)
    m = _quiet(0, 0.0, float(days))
    assert g["churn"]["score"] == round(0.45 * m, 4)
    assert [code for code, _ in _reasons(g)] == ["model_quiet"]


def test_parts_combine_as_a_noisy_or() -> None:
    evs = [
        order("e1", T0, 100),
        order("e2", T0 + 20 * DAY, 100),
        interaction("s1", T0 + 100 * DAY, "survey_response", nps=1),
        complaint("k1", T0 + 110 * DAY, "complaint_opened", "K", "medium"),
    ]
    s, _ = run(evs, POLICY)
    t = T0 + 150 * DAY
    g = grade(s, t, POLICY)
    m = _quiet(1, 20.0, 150.0)
    complaints = 0.25 * min(1.0, 0.5 + 0.1)  # open medium + recent medium
    expected = 1 - (1 - 0.45 * m) * (1 - 0.15) * (1 - complaints)
    assert g["churn"]["score"] == round(expected, 4)
    # Ranked by the share of -ln(1 - score): the largest weighted part first.
    codes = [code for code, _ in _reasons(g)]
    assert codes == ["model_quiet", "open_complaints", "recent_complaints", "nps_detractor"]
    assert 0.45 * m > complaints >= 0.15  # a tie keeps the fixed order


def test_the_model_reason_quotes_the_figures() -> None:
    evs = [order(f"e{i}", T0 + i * 10 * DAY, 100) for i in range(6)]
    s, _ = run(evs, POLICY)
    g = grade(s, T0 + 190 * DAY, POLICY)
    quiet = _quiet(5, 50.0, 190.0)
    alive = p_alive(MODEL.bgnbd, 5, 50.0, 190.0)
    assert _reasons(g) == [
        (
            "model_quiet",
            f"P(no order in the next 90 days) {quiet:.2f}: 6 orders, the last 140 days ago; "
            f"P(alive) {alive:.2f} (model bgnbd-gg-test)",
        )
    ]
    assert g["churn"]["score"] == round(0.45 * quiet, 4)


def test_the_p_alive_signal_is_blind_for_one_order_customers() -> None:
    p = model_policy(signal="p_alive")
    s, _ = run([order("e1", T0, 100)], p)
    assert grade(s, T0 + 900 * DAY, p)["churn"]["score"] == 0.0  # P(alive) = 1 at x = 0
    s, _ = run([order("e1", T0, 100), order("e2", T0 + 10 * DAY, 100)], p)
    g = grade(s, T0 + 300 * DAY, p)
    alive = p_alive(MODEL.bgnbd, 1, 10.0, 300.0)
    assert g["churn"]["score"] == round(0.45 * (1 - alive), 4)
    ((code, message),) = _reasons(g)
    assert code == "model_not_alive"
    assert message.startswith(f"P(alive) {alive:.2f}: 2 orders, the last 290 days ago; ")


def test_complaints_drive_when_they_weigh_more() -> None:
    s, _ = run(
        [
            order("e1", T0, 100),
            complaint("k1", T0 + DAY, "complaint_opened", "K", "high"),
        ],
        POLICY,
    )
    codes = [code for code, _ in _reasons(snapshot(s, POLICY))]
    assert codes[:2] == ["open_complaints", "recent_complaints"]  # 0.25 > 0.45 * 0.5
    assert codes[2] == "model_quiet"


def test_prospects_have_no_model_part() -> None:
    s, _ = run([interaction("s1", T0, "survey_response", nps=0)], POLICY)
    g = snapshot(s, POLICY)
    assert g["churn"]["score"] == 0.15
    assert [code for code, _ in _reasons(g)] == ["nps_detractor"]
    assert g["churn"]["model"] == {
        "model_version": "bgnbd-gg-test",
        "p_alive": None,
        "p_no_order_90d": None,
        "expected_90d": None,
        "expected_365d": None,
        "clv": None,
    }


# --- the snapshot -------------------------------------------------------------------------


def test_the_snapshot_carries_the_model_block() -> None:
    evs = [order("e1", T0, 120), order("e2", T0 + 30 * DAY, 80), order("e3", T0 + 60 * DAY, 100)]
    s, _ = run(evs, POLICY)
    t = T0 + 100 * DAY
    g = grade(s, t, POLICY)
    sc = score(MODEL, 2, 60.0, 100.0, 100.0, value_orders=3)
    assert g["policy_version"] == "model-p_no_order_90d-0.45+bgnbd-gg-test"
    assert g["churn"]["model"] == {
        "model_version": "bgnbd-gg-test",
        "p_alive": round(sc.p_alive, 4),
        "p_no_order_90d": round(sc.p_no_order_90d, 4),
        "expected_90d": round(sc.expected_90d, 4),
        "expected_365d": round(sc.expected_365d, 4),
        "clv": round(sc.clv, 2),
    }
    # The score's signal is the block's P(no order), to the last bit before rounding.
    assert g["churn"]["score"] == round(0.45 * sc.p_no_order_90d, 4)
    assert "model" not in grade(s, t, load_policy())["churn"]


def test_orders_outside_the_window_value_at_the_population_mean() -> None:
    s, _ = run([order("e1", T0, 5000)], POLICY)
    g = grade(s, T0 + 500 * DAY, POLICY)
    sc = score(MODEL, 0, 0.0, 500.0, math.nan, value_orders=0)
    assert g["churn"]["model"]["clv"] == round(sc.clv, 2)


# --- time ---------------------------------------------------------------------------------


def _alerts(out: list[Event]) -> list[tuple[str, str, str, str]]:
    return [
        (o["band"], o["alert"], o["occurred_at"], o["cause"]["kind"])
        for o in out
        if o["type"] == "churn_risk_changed"
    ]


def test_the_band_rises_on_the_models_curve_at_the_exact_second() -> None:
    # An open high complaint (0.25, for good) and the model's part: medium at once, high
    # (0.5) once 1 - (1 - 0.45 m) * 0.75 reaches 0.5 by the 4-place rounding.
    s, out = run(
        [order("e1", T0, 100), complaint("k1", T0 + DAY, "complaint_opened", "K", "high")],
        POLICY,
    )
    assert snapshot(s, POLICY)["churn"]["band"] == "medium"
    before = decode(encode(s))
    out = advance(s, T0 + 400 * DAY, POLICY)
    ((band, alert, when, cause),) = _alerts(out)
    assert (band, alert, cause) == ("high", "raised", "inactivity")
    t = s.last_alert
    assert t is not None
    assert when == at(t)
    assert grade_at(before, t - 1) < 0.5 <= grade_at(before, t)
    need = (1 - (1 - 0.49995) / 0.75) / 0.45  # m* = (1 - (1 - beta) / others) / w
    assert _quiet(0, 0.0, (t - T0) / DAY) == pytest.approx(need, abs=1e-7)
    assert 200 * DAY < t - T0 < 250 * DAY


def grade_at(s: Any, t: int) -> float:
    """The churn score at ``t`` (`grade` rolls a copy to ``t``)."""
    return float(grade(s, t, POLICY)["churn"]["score"])


def test_next_due_is_the_models_crossing() -> None:
    s, _ = run([order("e1", T0, 100)], POLICY)
    # Alone the model part reaches medium (0.3) when P(no order in 90 days) >= 0.3 / 0.45;
    # before that, only the lifecycle's "new" end (30 days) is due.
    due = next_due(s, POLICY)
    assert due == T0 + 30 * DAY + 1
    s2, _ = run([order("e1", T0, 100)], POLICY, until=T0 + 100 * DAY)
    crossing = next_due(s2, POLICY)
    assert crossing is not None
    assert crossing < T0 + 183 * DAY  # before the next recency edge
    assert grade(s2, crossing - 1, POLICY)["churn"]["band"] == "low"
    assert grade(s2, crossing, POLICY)["churn"]["band"] == "medium"


def test_an_order_resets_the_models_clock() -> None:
    s, _ = run([order("e1", T0, 100)], POLICY, until=T0 + 200 * DAY)
    assert grade(s, T0 + 200 * DAY, POLICY)["churn"]["band"] == "medium"
    r = apply(s, order("e2", T0 + 200 * DAY, 100), POLICY)
    assert r.rejection is None
    g = snapshot(s, POLICY)
    assert g["churn"]["score"] == round(0.45 * _quiet(1, 200.0, 200.0), 4)
    assert g["churn"]["band"] == "low"
