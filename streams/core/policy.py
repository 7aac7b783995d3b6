"""The grading policy: every threshold, bin, ladder, rule, window and weight, validated once.

A policy file (TOML or YAML) is parsed into `Policy`, a frozen pydantic model that refuses
unknown keys, so a misspelt key is an error naming it rather than a silently ignored
default. Cross-field rules (ascending bins, an ordered ladder, an alert band that exists,
segment rules that cover every RFM code) are checked too.

The hot path never touches pydantic: `Policy.compiled` is a plain slotted object built
once at construction, with money in integer cents and durations in seconds.
"""

from __future__ import annotations

import re
import tomllib
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from streams.core.compiled import CompiledPolicy, compile_policy
from streams.core.errors import PolicyError
from streams.models.model import Model, ModelError
from streams.models.unfitted import Unfitted, load_model_file

__all__ = ["Policy", "default_policy", "load_policy", "policy_from_dict"]

Severity = Literal["low", "medium", "high"]
_CURRENCY = re.compile(r"^[A-Z]{3}$")
# A cross-field check names its own sub-key: "<sub.path>|<reason>" is split by the formatter.
_SUB = "|"

# Every number of a policy is finite (`allow_inf_nan=False`: TOML and YAML both spell
# inf and nan) and bounded. The bounds are far wider than any sensible policy and narrow
# enough that what the core derives stays exact and small: cents and seconds far from
# 64-bit limits, date arithmetic within year 9999, no loop that runs for ever on a huge
# cadence. An infinite gold threshold once dead-lettered every record.
MAX_DAYS = 3660  # ten years: windows, ages, grace periods, cadences
MAX_HOURS = 24 * 366  # a year: lateness, alert cooldown
MAX_MONEY = 10**12  # base-currency units; one order is at most 1e9 (schemas/orders.json)
MAX_COUNT = 1_000_000  # orders, visits, calls, interactions
MAX_RATE = 10**9  # base-currency units per unit of another currency
MAX_EXPONENT = 2  # how much past orders lengthen the silence a customer is given
MAX_STEEPNESS = 16  # of the complaints component's rise
MAX_BINS = 98  # per RFM axis: scores run 1..99 (customer-grades.json, score)


class _Model(BaseModel):
    """Frozen, unknown keys refused (a typo must not fall back to a default), numbers finite."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


def _fail(subpath: str, reason: str) -> ValueError:
    return ValueError(f"{subpath}{_SUB}{reason}")


def _ascending(name: str, values: list[float] | list[int]) -> None:
    for i in range(1, len(values)):
        if values[i] <= values[i - 1]:
            raise _fail(f"{name}[{i}]", f"must be greater than {name}[{i - 1}] ({values[i - 1]})")


class Currency(_Model):
    base: str = Field(pattern=r"^[A-Z]{3}$")
    # Units of the base currency for one unit of the key currency.
    rates: dict[str, Annotated[float, Field(gt=0, le=MAX_RATE)]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> Currency:
        for code in self.rates:
            if not _CURRENCY.match(code):
                raise _fail(f"rates.{code}", "must be an ISO 4217 code of 3 upper-case letters")
        if self.base in self.rates and self.rates[self.base] != 1.0:
            raise _fail(f"rates.{self.base}", "the base currency's rate must be 1")
        return self


class Events(_Model):
    # Events older than as_of - lateness are refused (too_late): the bound that makes dedup safe.
    lateness_hours: int = Field(ge=0, le=MAX_HOURS)
    dedup_max_ids: int = Field(ge=1, le=100_000)
    # Events further ahead of their partition's stream time are refused (from_the_future,
    # streams.core.future). A default: policy files written before it stay valid.
    ahead_of_stream_days: int = Field(default=30, ge=1, le=MAX_DAYS)


class Rfm(_Model):
    window_days: int = Field(ge=1, le=MAX_DAYS)
    monetary_unit: float = Field(gt=0, le=MAX_MONEY)
    # Upper bounds (inclusive, days) of R4, R3, R2...; anything older scores R1.
    recency_max_days: list[Annotated[int, Field(ge=0, le=MAX_DAYS)]] = Field(
        min_length=1, max_length=MAX_BINS
    )
    # Lower bounds of F2, F3, F4... (orders in the window); 1 order or more scores F1.
    frequency_min_orders: list[Annotated[int, Field(le=MAX_COUNT)]] = Field(
        min_length=1, max_length=MAX_BINS
    )
    # Lower bounds of M2, M3, M4... in units; any positive net spend scores at least M1.
    monetary_min_units: list[Annotated[float, Field(gt=0, le=MAX_MONEY)]] = Field(
        min_length=1, max_length=MAX_BINS
    )

    @model_validator(mode="after")
    def _check(self) -> Rfm:
        _ascending("recency_max_days", self.recency_max_days)
        _ascending("frequency_min_orders", self.frequency_min_orders)
        _ascending("monetary_min_units", self.monetary_min_units)
        if self.frequency_min_orders[0] < 2:
            raise _fail("frequency_min_orders[0]", "must be >= 2 (one order already scores F1)")
        return self


class SegmentRule(_Model):
    name: str = Field(min_length=1, max_length=64)
    # Inclusive [low, high] score ranges; 0 means "no order" (r) or "none in the window" (f, m).
    r: tuple[int, int]
    f: tuple[int, int]
    m: tuple[int, int]


class Rung(_Model):
    name: str = Field(min_length=1, max_length=64)
    # A rung is reached when ANY of its conditions holds; a rung with none is the floor.
    min_spend: float | None = Field(default=None, ge=0, le=MAX_MONEY)
    min_orders: int | None = Field(default=None, ge=1, le=MAX_COUNT)
    min_single_order: float | None = Field(default=None, ge=0, le=MAX_MONEY)


class Tiers(_Model):
    downgrade_grace_days: int = Field(ge=0, le=MAX_DAYS)
    # A tier-warnings event this many days before a downgrade by time takes effect (at the
    # grace's start when the grace is shorter); 0: no warnings.
    warning_days: int = Field(14, ge=0, le=MAX_DAYS)
    ladder: list[Rung] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> Tiers:
        names = [r.name for r in self.ladder]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise _fail(f"ladder[{i}].name", f"duplicate tier name {name!r}")
        floor = self.ladder[0]
        if (floor.min_spend, floor.min_orders, floor.min_single_order) != (None, None, None):
            raise _fail("ladder[0]", "the first rung is the floor and must have no conditions")
        for i, rung in enumerate(self.ladder[1:], start=1):
            if (rung.min_spend, rung.min_orders, rung.min_single_order) == (None, None, None):
                raise _fail(f"ladder[{i}]", "needs min_spend, min_orders or min_single_order")
            below = self.ladder[i - 1]
            for key in ("min_spend", "min_orders", "min_single_order"):
                mine, theirs = getattr(rung, key), getattr(below, key)
                if mine is not None and theirs is not None and mine <= theirs:
                    raise _fail(
                        f"ladder[{i}].{key}",
                        f"must be greater than ladder[{i - 1}].{key} ({theirs}): the ladder "
                        "goes up",
                    )
        return self


class Lifecycle(_Model):
    new_days: int = Field(ge=0, le=MAX_DAYS)
    silent_days: int = Field(ge=1, le=MAX_DAYS)
    churned_days: int = Field(ge=1, le=MAX_DAYS)
    reactivated_days: int = Field(ge=0, le=MAX_DAYS)

    @model_validator(mode="after")
    def _check(self) -> Lifecycle:
        if self.churned_days <= self.silent_days:
            raise _fail("churned_days", f"must be greater than silent_days ({self.silent_days})")
        return self


class Intent(_Model):
    window_days: int = Field(ge=2, le=MAX_DAYS)
    ability_min_spend: float = Field(ge=0, le=MAX_MONEY)
    satisfied_max_open_severity: Severity | Literal["none"]
    repeat_visit_days: int = Field(ge=1, le=MAX_DAYS)
    min_inbound_calls: int = Field(ge=1, le=MAX_COUNT)
    min_site_store_visits: int = Field(ge=1, le=MAX_COUNT)
    min_purchase_inquiries: int = Field(ge=1, le=MAX_COUNT)
    full_price_max_discount: float = Field(ge=0, le=1)


class ValueClass(_Model):
    a_min_spend: float = Field(ge=0, le=MAX_MONEY)
    b_min_spend: float = Field(ge=0, le=MAX_MONEY)

    @model_validator(mode="after")
    def _check(self) -> ValueClass:
        if self.a_min_spend <= self.b_min_spend:
            raise _fail("a_min_spend", f"must be greater than b_min_spend ({self.b_min_spend})")
        return self


class ChurnWeights(_Model):
    # Each part alone gives at most its weight: the parts combine as 1 - prod(1 - w c).
    recency: float = Field(ge=0, le=1)
    complaints: float = Field(ge=0, le=1)
    surveys: float = Field(ge=0, le=1)
    engagement: float = Field(ge=0, le=1)


class Band(_Model):
    name: str = Field(min_length=1, max_length=32)
    min_score: float = Field(ge=0, le=1)


class ChurnRecency(_Model):
    # The silence component: (days + prior) / (days + prior + (half + prior) * orders^k).
    half_days: float = Field(gt=0, le=MAX_DAYS)
    prior_days: float = Field(ge=0, le=MAX_DAYS)
    orders_exponent: float = Field(ge=0, le=MAX_EXPONENT)


class SeverityWeights(_Model):
    # Summed over open and recent complaints into the complaints component.
    low: float = Field(ge=0, le=1)
    medium: float = Field(ge=0, le=1)
    high: float = Field(ge=0, le=1)


class ChurnComplaints(_Model):
    window_days: int = Field(ge=1, le=MAX_DAYS)
    # The component: w^s / (w^s + half^s) of the summed severity weights w.
    half_weight: float = Field(ge=0.01, le=MAX_COUNT)
    steepness: float = Field(ge=1, le=MAX_STEEPNESS)
    open_weights: SeverityWeights
    recent_weights: SeverityWeights


class ChurnSurveys(_Model):
    max_age_days: int = Field(ge=1, le=MAX_DAYS)
    nps_detractor_max: int = Field(ge=0, le=10)
    csat_low_max: int = Field(ge=1, le=5)
    ces_high_min: int = Field(ge=1, le=7)


class ChurnEngagement(_Model):
    min_baseline: int = Field(ge=1, le=MAX_COUNT)


class ChurnModel(_Model):
    """A fitted BG/NBD + Gamma-Gamma model (MODEL.json, `gradestream fit`) whose signal
    joins the churn score as a part of its own, beside silence (docs/models.md)."""

    # Relative to the policy file's folder, or absolute; read and validated with the policy.
    path: str = Field(min_length=1, max_length=4096)
    # p_no_order_90d: P(no order in the next 90 days); p_alive: scored as 1 - P(alive).
    signal: Literal["p_no_order_90d", "p_alive"] = "p_no_order_90d"
    weight: float = Field(ge=0, le=1)


class Churn(_Model):
    alert_band: str
    cooldown_hours: int = Field(ge=0, le=MAX_HOURS)
    weights: ChurnWeights
    bands: list[Band] = Field(min_length=2)
    recency: ChurnRecency
    complaints: ChurnComplaints
    surveys: ChurnSurveys
    engagement: ChurnEngagement
    model: ChurnModel | None = None

    @model_validator(mode="after")
    def _check(self) -> Churn:
        if self.bands[0].min_score != 0:
            raise _fail("bands[0].min_score", "must be 0 so that every score has a band")
        _ascending("bands.min_score", [b.min_score for b in self.bands])
        names = [b.name for b in self.bands]
        if self.alert_band not in names:
            raise _fail("alert_band", f"{self.alert_band!r} is not one of the bands {names}")
        if self.alert_band == names[0]:
            raise _fail("alert_band", "cannot be the lowest band (an alert could never clear)")
        return self


class Limits(_Model):
    # Bounds on per-customer state whatever the history (see docs/grading.md).
    max_tracked_orders: int = Field(ge=1, le=10_000)
    max_complaints: int = Field(ge=1, le=10_000)


class Policy(_Model):
    """A complete, validated grading policy. Build with `load_policy` or `policy_from_dict`."""

    policy_version: str = Field(min_length=1, max_length=128)
    currency: Currency
    events: Events
    rfm: Rfm
    segments: list[SegmentRule] = Field(min_length=1)
    tiers: Tiers
    lifecycle: Lifecycle
    intent: Intent
    value_class: ValueClass
    churn: Churn
    limits: Limits
    # The model named by churn.model, loaded by `load_policy` / `policy_from_dict` (the
    # only file I/O of the core); None without one, or when its file says the fit had too
    # little data (`unfitted` then says why: the model-free score is used meanwhile).
    _model: Model | None = PrivateAttr(default=None)
    _unfitted: str | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _check(self) -> Policy:
        max_r = len(self.rfm.recency_max_days) + 1
        max_f = len(self.rfm.frequency_min_orders) + 1
        max_m = len(self.rfm.monetary_min_units) + 1
        for i, rule in enumerate(self.segments):
            for axis, top in (("r", max_r), ("f", max_f), ("m", max_m)):
                low, high = getattr(rule, axis)
                if not 0 <= low <= high <= top:
                    raise _fail(
                        f"segments[{i}].{axis}",
                        f"[{low}, {high}] is not a range within 0..{top}",
                    )
        # Every code a customer can have must land in a segment: no customer is unnamed.
        codes = [(0, 0, 0)] + [
            (r, f, m)
            for r in range(1, max_r + 1)
            for f in range(max_f + 1)
            for m in range(max_m + 1)
        ]
        for r, f, m in codes:
            if not any(_matches(rule, r, f, m) for rule in self.segments):
                raise _fail("segments", f"no rule matches R{r}F{f}M{m}; add a catch-all rule")
        return self

    @property
    def model(self) -> Model | None:
        """The churn model loaded with the policy (None without `[churn.model]`)."""
        return self._model

    @property
    def unfitted(self) -> str | None:
        """Why `[churn.model]` names a file without parameters (None otherwise): the fit
        had too little data, and the churn score is the model-free one until it has."""
        return self._unfitted

    @property
    def version(self) -> str:
        """The version outputs carry: `policy_version`, plus ``+`` and the model's
        `model_version` when the policy has a churn model (docs/models.md: a new model
        file re-grades every customer, as a new policy does, even if the author kept
        `policy_version`)."""
        if self._model is None:
            return self.policy_version
        return f"{self.policy_version}+{self._model.model_version}"

    @cached_property
    def compiled(self) -> CompiledPolicy:
        """Plain values for the hot path (cents, seconds, tuples); built once, on first use.

        A cached_property, not a pydantic private attribute: after the first call it is a
        plain instance-dict read, which the per-event path can afford.
        """
        return compile_policy(self)


def _matches(rule: SegmentRule, r: int, f: int, m: int) -> bool:
    return (
        rule.r[0] <= r <= rule.r[1] and rule.f[0] <= f <= rule.f[1] and rule.m[0] <= m <= rule.m[1]
    )


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def _format(err: ValidationError) -> str:
    parts = []
    for e in err.errors(include_url=False):
        path = _loc(tuple(e["loc"]))
        msg = e["msg"]
        if e["type"] == "value_error":
            msg = str(e["ctx"]["error"]) if "ctx" in e else msg.removeprefix("Value error, ")
            if _SUB in msg:
                sub, msg = msg.split(_SUB, 1)
                joiner = "" if sub.startswith("[") or not path else "."
                path = f"{path}{joiner}{sub}"
        parts.append(f"{path or '(top level)'}: {msg}")
    return "invalid policy: " + "; ".join(parts)


def policy_from_dict(
    data: dict[str, Any], *, base_dir: Path | None = None, model: Model | None = None
) -> Policy:
    """Validate a parsed policy document; `PolicyError` names the key path and the reason.

    With `[churn.model]`, the model file is read from `churn.model.path`, relative to
    `base_dir` (the policy file's folder; None: the working directory) unless absolute.
    `model`: an already loaded model to use instead of reading the path (tests).

    >>> policy_from_dict({"policy_version": "v"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    streams.core.errors.PolicyError: invalid policy: currency: Field required; ...
    """
    if not isinstance(data, dict):
        raise PolicyError(
            f"invalid policy: the document must be a mapping, not {type(data).__name__}"
        )
    try:
        policy = Policy.model_validate(data)
    except ValidationError as err:
        raise PolicyError(_format(err)) from None
    spec = policy.churn.model
    if spec is None:
        if model is not None:
            raise PolicyError("invalid policy: churn.model: a model was given, the policy has none")
        return policy
    if model is None:
        path = Path(spec.path)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        try:
            loaded = load_model_file(path)
        except ModelError as err:
            raise PolicyError(f"invalid policy: churn.model.path: {err}") from None
        if isinstance(loaded, Unfitted):
            # Too little data to fit: grade without the model part until a fit succeeds
            # (the version is then the plain policy_version; a fitted model changes it,
            # which re-grades every customer).
            policy._unfitted = loaded.reason
            return policy
        model = loaded
    _attach(policy, model)
    return policy


def _attach(policy: Policy, model: Model) -> None:
    base = policy.currency.base
    if model.currency != base:
        raise PolicyError(
            f"invalid policy: churn.model.path: model {model.model_version} is in "
            f"{model.currency}, the policy's base currency is {base} (fit it with this "
            "policy: gradestream fit --policy)"
        )
    version = f"{policy.policy_version}+{model.model_version}"
    if len(version) > 128:
        raise PolicyError(
            f"invalid policy: policy_version: with the model's version it makes {version!r}, "
            "longer than 128 characters"
        )
    policy._model = model


def _parse(text: str, suffix: str, where: str) -> dict[str, Any]:
    try:
        if suffix == ".toml":
            return tomllib.loads(text)
        if suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text)
            if not isinstance(data, dict):
                raise PolicyError(f"{where}: the document must be a mapping of keys")
            return data
    except tomllib.TOMLDecodeError as err:
        raise PolicyError(f"{where}: not valid TOML: {err}") from None
    except yaml.YAMLError as err:
        raise PolicyError(f"{where}: not valid YAML: {err}") from None
    raise PolicyError(f"{where}: unknown policy format {suffix!r} (use .toml, .yaml or .yml)")


def load_policy(path: Path | None = None) -> Policy:
    """Read and validate a policy file (TOML or YAML by suffix); None → the packaged default.

    >>> load_policy().policy_version
    'default-2'
    """
    if path is None:
        text = resources.files("streams.policies").joinpath("default.toml").read_text("utf-8")
        where, suffix = "streams/policies/default.toml", ".toml"
    else:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise PolicyError(f"{path}: cannot read the policy file: {err.strerror}") from None
        except UnicodeDecodeError as err:
            raise PolicyError(f"{path}: not UTF-8 text: {err}") from None
        where, suffix = str(path), path.suffix.lower()
    data = _parse(text, suffix, where)
    try:
        return policy_from_dict(data, base_dir=None if path is None else path.parent)
    except PolicyError as err:
        raise PolicyError(f"{where}: {err}") from None


def default_policy() -> Policy:
    """The packaged default policy (a fresh validated copy)."""
    return load_policy(None)
