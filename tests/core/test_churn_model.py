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
from tests.core.models import MODEL, model_doc, model_policy
from tests.core.test_churn import complaints, noisy_or, silence

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


def test_the_weights_need_not_add_up_to_one() -> None:
    doc = model_doc()
    doc["churn"]["weights"] = {"recency": 0.0, "complaints": 0.5, "surveys": 0.5, "engagement": 0.5}
    assert policy_from_dict(doc, model=MODEL).compiled.w_complaints == 0.5
    del doc["churn"]["model"]
    assert policy_from_dict(doc).compiled.w_surveys == 0.5


# --- the score and its reasons ------------------------------------------------------------


def _quiet(x: int, t_x: float, age: float) -> float:
    return p_no_purchase(MODEL.bgnbd, 90.0, x, t_x, age)


@pytest.mark.parametrize("days", [0, 30, 200, 900])
def test_the_model_part_joins_silence(days: int) -> None:
    s, _ = run([order("e1", T0, 100)], POLICY)
    g = grade(s, T0 + days * DAY, POLICY)
    m = _quiet(0, 0.0, float(days))
    assert g["churn"]["score"] == round(noisy_or(silence(days), 0.45 * m), 4)
    codes = [code for code, _ in _reasons(g)]
    assert sorted(codes) == ["model_quiet", "recency"]
    assert codes[0] == ("model_quiet" if 0.45 * m > silence(days) else "recency")


def test_parts_combine_as_a_noisy_or() -> None:
    evs = [
        order("e1", T0, 100),
        order("e2", T0 + 20 * DAY, 100),
        interaction("s1", T0 + 100 * DAY, "survey_response", nps=1),
        *[
            complaint(f"k{i}", T0 + 110 * DAY, "complaint_opened", f"K{i}", "high")
            for i in range(4)
        ],
    ]
    s, _ = run(evs, POLICY)
    t = T0 + 150 * DAY
    g = grade(s, t, POLICY)
    m = _quiet(1, 20.0, 150.0)
    parts = (silence(130, 2), 0.45 * m, complaints(4 * 1.2), 0.05 * (6 / 7) ** 2)
    assert g["churn"]["score"] == round(noisy_or(*parts), 4)
    # The largest weighted part first.
    codes = [code for code, _ in _reasons(g)]
    assert codes == [
        "recency",
        "open_complaints",
        "recent_complaints",
        "model_quiet",
        "nps_detractor",
    ]
    assert silence(130, 2) > complaints(4.8) > 0.45 * m > 0.05 * (6 / 7) ** 2


def test_the_model_reason_quotes_the_figures() -> None:
    evs = [order(f"e{i}", T0 + i * 10 * DAY, 100) for i in range(6)]
    s, _ = run(evs, POLICY)
    g = grade(s, T0 + 190 * DAY, POLICY)
    quiet = _quiet(5, 50.0, 190.0)
    alive = p_alive(MODEL.bgnbd, 5, 50.0, 190.0)
    assert _reasons(g) == [
        ("recency", "Last order 140 days ago, 6 orders in all"),
        (
            "model_quiet",
            f"P(no order in the next 90 days) {quiet:.2f}: 6 orders, the last 140 days ago; "
            f"P(alive) {alive:.2f} (model bgnbd-gg-test)",
        ),
    ]
    assert g["churn"]["score"] == round(noisy_or(silence(140, 6), 0.45 * quiet), 4)


def test_the_p_alive_signal_is_blind_for_one_order_customers() -> None:
    p = model_policy(signal="p_alive")
    s, _ = run([order("e1", T0, 100)], p)
    g = grade(s, T0 + 900 * DAY, p)  # P(alive) = 1 at x = 0: silence alone
    assert g["churn"]["score"] == round(silence(900), 4)
    assert [code for code, _ in _reasons(g)] == ["recency"]
    s, _ = run([order("e1", T0, 100), order("e2", T0 + 10 * DAY, 100)], p)
    g = grade(s, T0 + 300 * DAY, p)
    alive = p_alive(MODEL.bgnbd, 1, 10.0, 300.0)
    assert g["churn"]["score"] == round(noisy_or(silence(290, 2), 0.45 * (1 - alive)), 4)
    _, (code, message) = _reasons(g)  # (silence weighs more here)
    assert code == "model_not_alive"
    assert message.startswith(f"P(alive) {alive:.2f}: 2 orders, the last 290 days ago; ")


def test_complaints_drive_when_they_weigh_more() -> None:
    s, _ = run(
        [order("e1", T0, 100)]
        + [complaint(f"k{i}", T0 + DAY, "complaint_opened", f"K{i}", "high") for i in range(6)],
        POLICY,
    )
    codes = [code for code, _ in _reasons(snapshot(s, POLICY))]
    assert codes == ["open_complaints", "recent_complaints", "recency", "model_quiet"]


def test_prospects_have_no_model_part() -> None:
    s, _ = run([interaction("s1", T0, "survey_response", nps=0)], POLICY)
    g = snapshot(s, POLICY)
    assert g["churn"]["score"] == 0.05
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
    assert g["churn"]["score"] == round(noisy_or(silence(40, 3), 0.45 * sc.p_no_order_90d), 4)
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
    # Two open high complaints (0.045, for 90 days) with silence and the model's part:
    # medium at once, high (0.5) once the time part reaches it by the 4-place rounding.
    s, out = run(
        [order("e1", T0, 100)]
        + [complaint(f"k{i}", T0 + DAY, "complaint_opened", f"K{i}", "high") for i in range(2)],
        POLICY,
    )
    assert snapshot(s, POLICY)["churn"]["band"] == "medium"
    before = decode(encode(s))
    out = advance(s, T0 + 200 * DAY, POLICY)
    ((band, alert, when, cause),) = _alerts(out)
    assert (band, alert, cause) == ("high", "raised", "inactivity")
    t = s.last_alert
    assert t is not None
    assert when == at(t)
    assert grade_at(before, t - 1) < 0.5 <= grade_at(before, t)


def grade_at(s: Any, t: int) -> float:
    """The churn score at ``t`` (`grade` rolls a copy to ``t``)."""
    return float(grade(s, t, POLICY)["churn"]["score"])


def test_next_due_is_the_models_crossing() -> None:
    s, _ = run([order("e1", T0, 100)], POLICY)
    # Medium at once (a one-order customer's silence and P(no order in 90 days)).
    assert snapshot(s, POLICY)["churn"]["band"] == "medium"
    # The due is a lower bound (engagement taken at its worst, since it cannot move the
    # band now)...
    due = next_due(s, POLICY)
    assert due is not None
    assert due <= T0 + 30 * DAY + 1  # no later than the lifecycle's "new" end
    # ...and the sweeps reach the crossing to high, to the second.
    before = decode(encode(s))
    ((band, alert, when, _),) = _alerts(advance(s, T0 + 182 * DAY, POLICY))
    crossing = s.last_alert
    assert crossing is not None
    assert due <= crossing
    assert (band, alert, when) == ("high", "raised", at(crossing))
    assert grade(before, crossing - 1, POLICY)["churn"]["band"] == "medium"


def test_an_order_resets_the_models_clock() -> None:
    s, _ = run([order("e1", T0, 100)], POLICY, until=T0 + 200 * DAY)
    assert grade(s, T0 + 200 * DAY, POLICY)["churn"]["band"] == "high"
    r = apply(s, order("e2", T0 + 200 * DAY, 100), POLICY)
    assert r.rejection is None
    g = snapshot(s, POLICY)
    assert g["churn"]["score"] == round(noisy_or(silence(0, 2), 0.45 * _quiet(1, 200.0, 200.0)), 4)
    assert g["churn"]["band"] == "medium"
