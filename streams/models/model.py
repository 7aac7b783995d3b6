"""The fitted model (MODEL.json) and the per-event scoring entry point.

`Model` holds both parameter sets, how they were fitted, and the CLV settings. It is
frozen and carries precomputed CLV period boundaries, so `score` does only arithmetic and
one scalar `hyp2f1` per period: no I/O, no clock, no numpy arrays, deterministic.

MODEL.json is versioned (`format` + `format_version`) and validated on load: unknown keys
are refused and every error names the key (``bgnbd.alpha: must be a finite number > 0``),
like the policy file, so a hand-edited or truncated model is caught at start-up.

>>> from streams.models.bgnbd import BgNbdParams
>>> from streams.models.gamma_gamma import GammaGammaParams
>>> m = Model("example-1", "USD", BgNbdParams(0.243, 30.9, 0.793, 2.426),
...           GammaGammaParams(6.25, 3.74, 15.44))
>>> s = score(m, x=2, t_x_days=213.0, T_days=272.0, mean_order_value=40.0)
>>> round(s.p_alive, 3), round(s.expected_365d, 3)
(0.727, 1.562)
>>> Model.from_json(m.to_json()) == m
True
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, NamedTuple

import orjson

from streams.models.bgnbd import BgNbdParams, FitReport
from streams.models.gamma_gamma import GammaGammaParams

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MONTH_DAYS",
    "Model",
    "ModelError",
    "ModelFit",
    "Scores",
    "load_model",
    "quiet_age",
    "score",
]

FORMAT: Final = "gradestream-model"
FORMAT_VERSION: Final = 1
# A "month" for CLV discounting: the mean Gregorian month.
MONTH_DAYS: Final = 365.25 / 12
_A_NEAR_ONE: Final = 1e-7


class ModelError(ValueError):
    """A MODEL.json that cannot be used; the message starts with the offending key."""


class Scores(NamedTuple):
    """What the model says about one customer now (expected purchases are repeat orders)."""

    p_alive: float
    expected_90d: float
    expected_365d: float
    clv: float  # in the model's currency, over clv_horizon_days, discounted monthly
    # P(no order in the next 90 days): unlike P(alive), informative for one-order customers
    # (see bgnbd.p_no_purchase and docs/models.md on which to use as the churn signal).
    p_no_order_90d: float


@dataclass(frozen=True, slots=True)
class ModelFit:
    """How the parameters were obtained (reported, not used for scoring)."""

    bgnbd: FitReport
    gamma_gamma: FitReport
    calibration_end: str  # RFC 3339: orders before it were used
    source: str  # the history file's name (not its path: no machine paths in artefacts)
    # Counts from reading the history: lines, orders, skipped by reason...
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Model:
    """A fitted BG/NBD + Gamma-Gamma model. Times in days, money in `currency`."""

    model_version: str
    currency: str
    bgnbd: BgNbdParams
    gamma_gamma: GammaGammaParams
    # CLV = sum over the horizon's ~monthly periods of expected purchases in the period
    # times the expected order value, discounted by (1 + monthly_discount) ** k.
    clv_horizon_days: float = 365.0
    monthly_discount: float = 0.01
    fit: ModelFit | None = None
    # Precomputed for `score`: period ends (days) and their discount factors.
    _periods: tuple[tuple[float, float], ...] = field(
        init=False, repr=False, compare=False, default=()
    )

    def __post_init__(self) -> None:
        if not self.model_version or len(self.model_version) > 128:
            raise ModelError("model_version: must be 1..128 characters")
        if len(self.currency) != 3 or not self.currency.isupper() or not self.currency.isalpha():
            raise ModelError("currency: must be an ISO 4217 code of 3 upper-case letters")
        if not (math.isfinite(self.clv_horizon_days) and 0 < self.clv_horizon_days <= 3660):
            raise ModelError("clv.horizon_days: must be a number in (0, 3660]")
        if not (math.isfinite(self.monthly_discount) and 0 <= self.monthly_discount < 1):
            raise ModelError("clv.monthly_discount: must be a number in [0, 1)")
        # The horizon split into K equal periods of about a month, each discounted at its
        # end; K = 1 for horizons under six weeks.
        k = max(1, round(self.clv_horizon_days / MONTH_DAYS))
        step = self.clv_horizon_days / k
        # The last end is the horizon itself (not k * step, which may differ in the last
        # bit), so `score` can recognise it and reuse the 365-day expectation.
        ends = [step * i for i in range(1, k)] + [float(self.clv_horizon_days)]
        periods = tuple(
            (end, (1.0 + self.monthly_discount) ** -i) for i, end in enumerate(ends, start=1)
        )
        object.__setattr__(self, "_periods", periods)

    # ---- MODEL.json ----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "model_version": self.model_version,
            "time_unit": "day",
            "currency": self.currency,
            "bgnbd": {
                "r": self.bgnbd.r,
                "alpha": self.bgnbd.alpha,
                "a": self.bgnbd.a,
                "b": self.bgnbd.b,
            },
            "gamma_gamma": {
                "p": self.gamma_gamma.p,
                "q": self.gamma_gamma.q,
                "v": self.gamma_gamma.v,
            },
            "clv": {
                "horizon_days": self.clv_horizon_days,
                "monthly_discount": self.monthly_discount,
            },
        }
        if self.fit is not None:
            out["fit"] = {
                "calibration_end": self.fit.calibration_end,
                "source": self.fit.source,
                "counts": dict(self.fit.counts),
                "bgnbd": _report_to_dict(self.fit.bgnbd),
                "gamma_gamma": _report_to_dict(self.fit.gamma_gamma),
            }
        return out

    def to_json(self) -> str:
        return orjson.dumps(self.to_dict(), option=orjson.OPT_INDENT_2).decode() + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> Model:
        """Parse and validate MODEL.json text; ModelError names the bad key."""
        try:
            doc = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise ModelError(f"(file): not valid JSON: {exc}") from None
        return cls.from_dict(doc)

    @classmethod
    def from_dict(cls, doc: Any) -> Model:
        d = _Obj(doc, "")
        fmt = d.str_("format")
        if fmt != FORMAT:
            raise ModelError(f"format: must be {FORMAT!r}, not {fmt!r}")
        version = d.raw("format_version")
        if version != FORMAT_VERSION or isinstance(version, bool):
            raise ModelError(
                f"format_version: this gradestream reads version {FORMAT_VERSION}, "
                f"the file is version {version!r}"
            )
        unit = d.str_("time_unit")
        if unit != "day":
            raise ModelError(f"time_unit: must be 'day', not {unit!r}")
        bg = d.obj("bgnbd")
        bgnbd = BgNbdParams(*(bg.positive(k) for k in ("r", "alpha", "a", "b")))
        bg.done()
        gg = d.obj("gamma_gamma")
        gp, gq, gv = (gg.positive(k) for k in ("p", "q", "v"))
        if gq <= 1:
            raise ModelError("gamma_gamma.q: must be > 1 (a finite mean order value)")
        gg.done()
        clv = d.obj("clv")
        horizon = clv.positive("horizon_days")
        discount = clv.number("monthly_discount")
        clv.done()
        fit = None
        if "fit" in d.doc:
            f = d.obj("fit")
            rb, rg = f.obj("bgnbd"), f.obj("gamma_gamma")
            counts = f.obj("counts")
            fit = ModelFit(
                bgnbd=_report_from(rb),
                gamma_gamma=_report_from(rg),
                calibration_end=f.str_("calibration_end"),
                source=f.str_("source"),
                counts={k: counts.count(k) for k in list(counts.doc)},
            )
            counts.done()
            f.done()
        model = cls(
            model_version=d.str_("model_version"),
            currency=d.str_("currency"),
            bgnbd=bgnbd,
            gamma_gamma=GammaGammaParams(gp, gq, gv),
            clv_horizon_days=horizon,
            monthly_discount=discount,
            fit=fit,
        )
        d.done()
        return model


def load_model(path: str | Path) -> Model:
    """Read and validate a fitted MODEL.json; ModelError names the file and the bad key.
    (`streams.models.unfitted.load_model_file` also reads a file without parameters.)"""
    try:
        text = Path(path).read_bytes()
    except OSError as exc:
        raise ModelError(f"(file): cannot read {path}: {exc.strerror}") from None
    try:
        return Model.from_json(text)
    except ModelError as exc:
        raise ModelError(f"{path}: {exc}") from None


def model_version_for(bgnbd: BgNbdParams, gamma_gamma: GammaGammaParams) -> str:
    """A deterministic version from the parameters: the same fit gives the same name."""
    digest = hashlib.blake2b(
        orjson.dumps([*bgnbd.as_tuple(), *gamma_gamma.as_tuple()]), digest_size=4
    ).hexdigest()
    return f"bgnbd-gg-{digest}"


# ---- scoring -------------------------------------------------------------------------------


def score(
    model: Model,
    x: int,
    t_x_days: float,
    T_days: float,
    mean_order_value: float,
    value_orders: int | None = None,
) -> Scores:
    """Score one customer: P(alive), expected repeat orders in 90 and 365 days, CLV, and
    P(no order in the next 90 days).

    x: repeat orders (live orders - 1); t_x_days: days from the first to the last order;
    T_days: days from the first order to now; mean_order_value: mean net value of the
    customer's orders in the model's currency, over `value_orders` orders (default x + 1,
    all of them). Only for customers with at least one order: a prospect has no BG/NBD
    clock. Inputs are clamped rather than refused (x >= 0, 0 <= t_x <= T), because this
    runs per event and the core's state is the authority on them.
    """
    # Imported here, not at the top: scipy costs ~0.4 s to import, and the policy module
    # imports this one, so every CLI start-up paid it, models or not. Here it is a
    # dictionary lookup (~0.3 µs) once the first score has imported it.
    from scipy.special import hyp2f1

    bg = model.bgnbd
    r, alpha, a, b = bg.r, bg.alpha, bg.a, bg.b
    if x < 0:
        x = 0
    T = T_days if T_days > 0.0 else 0.0
    t_x = 0.0 if x == 0 or t_x_days < 0.0 else (t_x_days if t_x_days < T else T)
    # P(alive) (see bgnbd.p_alive; inlined: this is the per-event path).
    if x == 0:
        alive = 1.0
    else:
        log_odds = math.log(a / (b + x - 1)) + (r + x) * math.log((alpha + T) / (alpha + t_x))
        alive = 0.0 if log_odds > 700.0 else 1.0 / (1.0 + math.exp(log_odds))
    # E[Y(t)] = scale * (1 - 2F1(r+x, a-1; a+b+x-1; -t/(alpha+T))) (see bgnbd.expected_purchases).
    if abs(a - 1.0) < _A_NEAR_ONE:
        a = 1.0 + _A_NEAR_ONE
    c = a + b + x - 1.0
    scale = c / (a - 1.0) * alive
    big_a, small_b, base = r + x, a - 1.0, alpha + T

    def expected(t: float) -> float:
        return scale * (1.0 - float(hyp2f1(big_a, small_b, c, -t / base)))

    e90 = expected(90.0)
    e365 = expected(365.0)
    quiet90 = 1.0 - alive * (1.0 - math.exp(-big_a * math.log1p(90.0 / base)))
    # Expected order value (see gamma_gamma.expected_order_value).
    gg = model.gamma_gamma
    n = x + 1 if value_orders is None else value_orders
    if n <= 0 or not mean_order_value >= 0.0:  # also catches NaN
        value = gg.p * gg.v / (gg.q - 1.0)
    else:
        value = gg.p * (gg.v + n * mean_order_value) / (gg.p * n + gg.q - 1.0)
    # CLV: expected purchases per period, discounted at the period's end.
    periods = model._periods
    if model.monthly_discount == 0.0:
        horizon = periods[-1][0]
        total = e365 if horizon == 365.0 else expected(horizon)
    else:
        total = 0.0
        before = 0.0
        for end, factor in periods:
            upto = e365 if end == 365.0 else expected(end)
            total += (upto - before) * factor
            before = upto
    return Scores(alive, e90, e365, total * value, quiet90)


def quiet_age(model: Model, x: int, t_x_days: float, level: float) -> float | None:
    """The age T (days since the first order) at which `Scores.p_no_order_90d` reaches `level`.

    Without a new order the quiet probability only rises with T (P(alive) falls and the
    posterior rate shrinks), so this is when a churn band built on it next changes: the
    core's next_due can use it instead of re-scoring on every sweep. Bisection to 1e-6 days
    on [t_x, t_x + 100 years]; None when it never gets there in that span (level >= 1).
    """
    bg = model.bgnbd
    r, alpha, a, b = bg.r, bg.alpha, bg.a, bg.b
    x = max(0, x)
    t_x = 0.0 if x == 0 else max(0.0, t_x_days)
    k = r + x
    log_d = math.log(a / (b + x - 1)) if x > 0 else 0.0

    def quiet(T: float) -> float:
        if x == 0:
            alive = 1.0
        else:
            log_odds = log_d + k * math.log((alpha + T) / (alpha + t_x))
            alive = 0.0 if log_odds > 700.0 else 1.0 / (1.0 + math.exp(log_odds))
        return 1.0 - alive * (1.0 - math.exp(-k * math.log1p(90.0 / (alpha + T))))

    lo, hi = t_x, t_x + 36_525.0
    if quiet(lo) >= level:
        return lo
    if quiet(hi) < level:
        return None
    while hi - lo > 1e-6:
        mid = 0.5 * (lo + hi)
        if quiet(mid) >= level:
            hi = mid
        else:
            lo = mid
    return hi


# ---- validation helpers ------------------------------------------------------------------


class _Obj:
    """A JSON object being read: typed getters that name the key, and a leftover check."""

    __slots__ = ("doc", "prefix", "seen")

    def __init__(self, doc: Any, prefix: str) -> None:
        if not isinstance(doc, dict):
            raise ModelError(f"{prefix.rstrip('.') or '(file)'}: must be a JSON object")
        self.doc: dict[str, Any] = doc
        self.prefix = prefix
        self.seen: set[str] = set()

    def raw(self, key: str) -> Any:
        if key not in self.doc:
            raise ModelError(f"{self.prefix}{key}: missing")
        self.seen.add(key)
        return self.doc[key]

    def str_(self, key: str) -> str:
        value = self.raw(key)
        if not isinstance(value, str):
            raise ModelError(f"{self.prefix}{key}: must be a string")
        return value

    def number(self, key: str) -> float:
        value = self.raw(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ModelError(f"{self.prefix}{key}: must be a number")
        if not math.isfinite(value):
            raise ModelError(f"{self.prefix}{key}: must be finite")
        return float(value)

    def positive(self, key: str) -> float:
        value = self.number(key)
        if value <= 0:
            raise ModelError(f"{self.prefix}{key}: must be a finite number > 0, not {value}")
        return value

    def count(self, key: str) -> int:
        value = self.raw(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ModelError(f"{self.prefix}{key}: must be a whole number >= 0")
        return value

    def obj(self, key: str) -> _Obj:
        return _Obj(self.raw(key), f"{self.prefix}{key}.")

    def done(self) -> None:
        extra = sorted(set(self.doc) - self.seen)
        if extra:
            raise ModelError(f"{self.prefix}{extra[0]}: unknown key")


def _report_to_dict(rep: FitReport) -> dict[str, Any]:
    return {
        "log_likelihood": rep.log_likelihood,
        "n_customers": rep.n_customers,
        "converged": rep.converged,
        "iterations": rep.iterations,
        "message": rep.message,
        # NaN (an unidentified parameter) is not JSON: null stands for it.
        "se": {k: (v if math.isfinite(v) else None) for k, v in rep.se.items()},
        "at_bound": list(rep.at_bound),
    }


def _report_from(o: _Obj) -> FitReport:
    se_obj = o.obj("se")
    se: dict[str, float] = {}
    for key in list(se_obj.doc):
        se[key] = math.nan if se_obj.doc[key] is None else se_obj.number(key)
        se_obj.seen.add(key)
    se_obj.done()
    converged = o.raw("converged")
    if not isinstance(converged, bool):
        raise ModelError(f"{o.prefix}converged: must be true or false")
    at_bound = o.raw("at_bound")
    if not isinstance(at_bound, list) or not all(isinstance(v, str) for v in at_bound):
        raise ModelError(f"{o.prefix}at_bound: must be a list of parameter names")
    rep = FitReport(
        log_likelihood=o.number("log_likelihood"),
        n_customers=o.count("n_customers"),
        converged=converged,
        iterations=o.count("iterations"),
        message=o.str_("message"),
        se=se,
        at_bound=tuple(at_bound),
    )
    o.done()
    return rep
