"""Policy loading and validation: every mistake is refused with the key path named."""

from __future__ import annotations

import copy
import math
import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.core.errors import PolicyError
from streams.core.policy import Policy, load_policy, policy_from_dict


def _default_doc() -> dict[str, Any]:
    text = resources.files("streams.policies").joinpath("default.toml").read_text("utf-8")
    return tomllib.loads(text)


def _set(doc: dict[str, Any], path: list[str | int], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    node: Any = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


def test_default_policy_loads() -> None:
    p = load_policy(None)
    assert p.policy_version == "default-2"
    assert p.currency.base == "USD"
    assert p.rfm.window_days == 365
    assert [r.name for r in p.tiers.ladder] == ["potential", "regular", "silver", "gold"]
    assert p.churn.alert_band == "high"
    c = p.compiled
    assert c.tier_rules[2] == (5_000_000, None, None)  # 50,000 USD in cents
    assert c.rates["USD"] == 1.0
    assert c.lateness_s == 7 * 86_400


def test_default_segments_cover_product_names() -> None:
    names = {s.name for s in load_policy().segments}
    assert names == {
        "Prospect",
        "Champions",
        "Loyal",
        "Potential Loyalist",
        "New",
        "Promising",
        "Needs Attention",
        "At Risk",
        "Cannot Lose",
        "Hibernating",
        "Lost",
    }


def test_policy_is_frozen() -> None:
    p = load_policy()
    with pytest.raises(Exception, match="frozen"):
        setattr(p, "policy_version", "x")  # noqa: B010  # the point: assignment is refused


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            ["tiers", "ladder", 2, "min_spend"],
            -1,
            "tiers.ladder[2].min_spend: Input should be greater than or equal to 0",
        ),
        (["rfm", "window_dayz"], 3, "rfm.window_dayz: Extra inputs are not permitted"),
        (["rfm", "recency_max_days"], [91, 60, 365], "rfm.recency_max_days[1]: must be greater"),
        (["rfm", "frequency_min_orders"], [3, 3, 11], "rfm.frequency_min_orders[1]"),
        (
            ["tiers", "ladder", 3, "min_spend"],
            40000.0,
            "tiers.ladder[3].min_spend: must be greater",
        ),
        (["tiers", "ladder", 0, "min_orders"], 1, "tiers.ladder[0]: the first rung is the floor"),
        (["churn", "alert_band"], "severe", "churn.alert_band: 'severe' is not one of the bands"),
        (["churn", "bands", 2, "min_score"], 0.2, "churn.bands.min_score[2]: must be greater"),
        (["currency", "rates", "eur"], 1.1, "currency.rates.eur: must be an ISO 4217 code"),
        (["currency", "rates", "EUR"], 0, "currency.rates.EUR: Input should be greater than 0"),
        (["currency", "base"], "usd", "currency.base: String should match pattern"),
        (["segments", 1, "r"], [4, 9], "segments[1].r: [4, 9] is not a range within 0..4"),
        (["lifecycle", "churned_days"], 60, "lifecycle.churned_days: must be greater than"),
        (["value_class", "a_min_spend"], 10.0, "value_class.a_min_spend: must be greater"),
        (["events", "lateness_hours"], "soon", "events.lateness_hours: Input should be a valid"),
        (["intent", "satisfied_max_open_severity"], "mild", "intent.satisfied_max_open_severity"),
        (["policy_version"], "", "policy_version: String should have at least 1 character"),
    ],
)
def test_bad_values_are_refused_naming_the_key(
    path: list[str | int], value: Any, message: str
) -> None:
    with pytest.raises(PolicyError) as err:
        policy_from_dict(_set(_default_doc(), path, value))
    assert message in str(err.value)


def test_missing_section_is_named() -> None:
    doc = _default_doc()
    del doc["churn"]["cooldown_hours"]
    with pytest.raises(PolicyError, match=r"churn\.cooldown_hours: Field required"):
        policy_from_dict(doc)


def test_segment_rules_must_cover_every_code() -> None:
    doc = _default_doc()
    doc["segments"] = [s for s in doc["segments"] if s["name"] != "Lost"]
    with pytest.raises(PolicyError, match=r"segments: no rule matches R1F0M0"):
        policy_from_dict(doc)


def test_yaml_and_toml_give_the_same_policy(tmp_path: Path) -> None:
    doc = _default_doc()
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    toml_copy = tmp_path / "p.toml"
    toml_copy.write_text(
        resources.files("streams.policies").joinpath("default.toml").read_text("utf-8"),
        encoding="utf-8",
    )
    assert load_policy(tmp_path / "p.yaml") == load_policy(toml_copy) == load_policy()


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("policy_version = [", encoding="utf-8")
    with pytest.raises(PolicyError, match=r"bad\.toml: not valid TOML"):
        load_policy(bad)
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "missing.toml")
    other = tmp_path / "p.json"
    other.write_text("{}", encoding="utf-8")
    with pytest.raises(PolicyError, match="unknown policy format"):
        load_policy(other)
    listy = tmp_path / "p.yaml"
    listy.write_text("- 1\n- 2\n", encoding="utf-8")
    with pytest.raises(PolicyError, match="must be a mapping"):
        load_policy(listy)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(yaml.safe_dump(_set(_default_doc(), ["rfm", "window_days"], 0)), "utf-8")
    with pytest.raises(PolicyError, match=r"wrong\.yaml: invalid policy: rfm\.window_days"):
        load_policy(wrong)


def test_policy_from_dict_refuses_non_mappings() -> None:
    with pytest.raises(PolicyError, match="must be a mapping"):
        policy_from_dict([])  # type: ignore[arg-type]  # the point: a list is refused


def test_compiled_is_built_once() -> None:
    p = load_policy()
    assert p.compiled is p.compiled
    assert isinstance(p, Policy)


# -- hostile numbers (issue 16): finite and within a sane range, or refused naming the key --

GOLD_MIN_SPEND = ["tiers", "ladder", 3, "min_spend"]
HALF_DAYS = ["churn", "recency", "half_days"]


def _refused(path: list[str | int], value: Any) -> str:
    with pytest.raises(PolicyError) as err:
        policy_from_dict(_set(_default_doc(), path, value))
    return str(err.value)


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan], ids=["inf", "-inf", "nan"])
@pytest.mark.parametrize(
    "path",
    [
        GOLD_MIN_SPEND,
        HALF_DAYS,
        ["churn", "recency", "orders_exponent"],
        ["churn", "complaints", "half_weight"],
        ["churn", "weights", "recency"],
        ["churn", "complaints", "open_weights", "high"],
        ["rfm", "monetary_unit"],
        ["value_class", "a_min_spend"],
        ["intent", "full_price_max_discount"],
        ["currency", "rates", "EUR"],
    ],
    ids=lambda p: ".".join(map(str, p)),
)
def test_infinite_and_nan_numbers_are_refused_naming_the_key(
    path: list[str | int], value: float
) -> None:
    key = ".".join(str(p) for p in path).replace(".3.", "[3].")
    assert f"{key}: " in _refused(path, value)


def test_inf_in_a_toml_file_is_refused_naming_the_key(tmp_path: Path) -> None:
    # The two files, as written by hand: TOML spells inf and nan.
    text = resources.files("streams.policies").joinpath("default.toml").read_text("utf-8")
    for old, new, key in [
        ("min_spend = 80000.0", "min_spend = inf", "tiers.ladder[3].min_spend"),
        ("half_days = 60.0", "half_days = inf", "churn.recency.half_days"),
        ("half_days = 60.0", "half_days = nan", "churn.recency.half_days"),
        ("a_min_spend = 20000.0", "a_min_spend = -inf", "value_class.a_min_spend"),
    ]:
        assert old in text
        path = tmp_path / "hostile.toml"
        path.write_text(text.replace(old, new), encoding="utf-8")
        with pytest.raises(PolicyError, match=re.escape(f"hostile.toml: invalid policy: {key}")):
            load_policy(path)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        # Days: at most ten years.
        (HALF_DAYS, 3661.0),
        (HALF_DAYS, 1e300),
        (HALF_DAYS, 0),
        (["churn", "recency", "prior_days"], -1.0),
        (["lifecycle", "churned_days"], 100_000),
        (["lifecycle", "new_days"], -1),
        (["rfm", "window_days"], -365),
        (["rfm", "recency_max_days"], [91, 182, 10**9]),
        (["rfm", "recency_max_days"], [-1, 182, 365]),
        (["intent", "window_days"], 10**6),
        (["intent", "repeat_visit_days"], 10**6),
        (["churn", "complaints", "window_days"], 0),
        (["churn", "surveys", "max_age_days"], 10**9),
        (["tiers", "downgrade_grace_days"], -30),
        # Hours: at most a year.
        (["events", "lateness_hours"], 10**7),
        (["churn", "cooldown_hours"], 10**7),
        (["churn", "cooldown_hours"], -1),
        # Weights and shares: within [0, 1].
        (["churn", "weights", "recency"], 1.5),
        (["churn", "weights", "complaints"], -0.25),
        (["churn", "complaints", "open_weights", "high"], 2.0),
        (["churn", "complaints", "recent_weights", "low"], -0.1),
        (["churn", "bands", 3, "min_score"], 1.5),
        (["intent", "full_price_max_discount"], 1.01),
        # Money: >= 0 and at most 1e12 base-currency units.
        (GOLD_MIN_SPEND, 1e13),
        (GOLD_MIN_SPEND, -1.0),
        (["tiers", "ladder", 1, "min_single_order"], 1e300),
        (["intent", "ability_min_spend"], -5.0),
        (["value_class", "a_min_spend"], 1e15),
        (["rfm", "monetary_unit"], 0),
        (["rfm", "monetary_min_units"], [3.0, 6.0, 1e15]),
        (["rfm", "monetary_min_units"], [-3.0, 6.0, 11.0]),
        (["currency", "rates", "EUR"], 1e10),
        (["currency", "rates", "EUR"], -1.08),
        # Counts: >= 1 and at most a million.
        (["tiers", "ladder", 1, "min_orders"], 10**9),
        (["rfm", "frequency_min_orders"], [3, 6, 10**9]),
        (["intent", "min_inbound_calls"], 0),
        (["churn", "engagement", "min_baseline"], 10**9),
        # Shapes: exponents and the complaints' half weight, bounded.
        (["churn", "recency", "orders_exponent"], 3.0),
        (["churn", "recency", "orders_exponent"], -0.5),
        (["churn", "complaints", "steepness"], 0.5),
        (["churn", "complaints", "steepness"], 100.0),
        (["churn", "complaints", "half_weight"], 0),
        # Bins per RFM axis: scores stay within the output schema's 1..99.
        (["rfm", "recency_max_days"], list(range(1, 200))),
    ],
    ids=lambda v: ".".join(map(str, v)) if isinstance(v, list) and len(v) < 6 else None,
)
def test_numbers_outside_their_sane_range_are_refused_naming_the_key(
    path: list[str | int], value: Any
) -> None:
    # The message names the key (a list item by its index).
    key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
    assert f"invalid policy: {key}" in _refused(path, value)


@pytest.mark.parametrize(
    "path",
    [
        Path(__file__).resolve().parents[2] / "streams" / "policies" / "default.toml",
        *sorted(
            (Path(__file__).resolve().parents[2] / "streams" / "policies").glob("examples/*.toml")
        ),
        Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "policy.toml",
    ],
    ids=lambda p: p.name,
)
def test_shipped_policies_are_within_the_bounds(path: Path) -> None:
    assert load_policy(path).policy_version
