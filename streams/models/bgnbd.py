"""BG/NBD: the beta-geometric / negative binomial purchase model (Fader, Hardie & Lee 2005).

A customer, while alive, buys as a Poisson process with rate lambda; after each *repeat*
purchase they drop out for good with probability p. Across customers lambda ~ Gamma(r,
alpha) (rate alpha) and p ~ Beta(a, b). A customer's history is summarised by

* ``x``   repeat purchases (orders after the first),
* ``t_x`` age at the last purchase (time from the first purchase to the last; 0 if x = 0),
* ``T``   age at the end of observation (time from the first purchase to "now").

The time unit is the **day** everywhere in this package: ``alpha`` is in days, ``t_x``
and ``T`` are in days, and an expectation "in the next t days" takes t in days.

Two halves, for two places:

* Fitting (offline, numpy arrays): `log_likelihood` and `fit` (maximum likelihood,
  L-BFGS-B on log-parameters, standard errors from a numerical Hessian).
* Scoring (per event, scalars): `p_alive`, `expected_purchases` and `p_alive_age` are
  closed forms in plain floats with one scalar `scipy.special.hyp2f1` call at most; no
  numpy arrays, so a call costs about a microsecond or two.

>>> params = BgNbdParams(r=0.243, alpha=4.414 * 7, a=0.793, b=2.426)  # CDNOW, weeks -> days
>>> p_alive(params, 0, 0.0, 300.0)
1.0
>>> round(p_alive(params, 2, 30.43 * 7, 38.86 * 7), 4)
0.7266
>>> round(expected_purchases(params, 39 * 7, 2, 30.43 * 7, 38.86 * 7), 3)  # FHL 2005: 1.226
1.226
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "BgNbdParams",
    "FitReport",
    "expected_purchases",
    "fit",
    "log_likelihood",
    "p_alive",
    "p_alive_age",
    "p_no_purchase",
    "unconditional_expected_purchases",
]

FloatArray = npt.NDArray[np.float64]
Objective = Callable[[FloatArray], float]

# The optimiser works on log-parameters, boxed so that a degenerate sample (say, nobody
# ever drops out, pushing a/b to infinity) ends at a bound the report shows rather than
# overflowing. e^-12 .. e^12 is ~6e-6 .. 1.6e5: wider than any sensible retail value.
_LOG_BOUND: Final = 12.0
# Central-difference step on log-parameters for the Hessian: large enough that rounding
# in a ~1e4-sized log-likelihood stays ~1e-4 relative to the curvature, small enough that
# the O(h^2) truncation error is negligible.
_HESSIAN_STEP: Final = 1e-4
# At a = 1 the conditional expectation is 0/0; a is nudged off 1 by this much (the
# function is continuous there, so the error is of this order, relative).
_A_NEAR_ONE: Final = 1e-7


@dataclass(frozen=True, slots=True)
class BgNbdParams:
    """(r, alpha) of the Gamma purchase-rate mix and (a, b) of the Beta drop-out mix."""

    r: float
    alpha: float  # days
    a: float
    b: float

    def __post_init__(self) -> None:
        for name in ("r", "alpha", "a", "b"):
            value = getattr(self, name)
            if not (isinstance(value, float | int) and math.isfinite(value) and value > 0):
                raise ValueError(f"BG/NBD {name} must be a finite number > 0, not {value!r}")

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.r, self.alpha, self.a, self.b)


@dataclass(frozen=True, slots=True)
class FitReport:
    """How a maximum-likelihood fit went; `se` holds standard errors by parameter name."""

    log_likelihood: float
    n_customers: int
    converged: bool
    iterations: int
    message: str
    se: dict[str, float]
    # Names of parameters that ended on the optimiser's box: their SE means little.
    at_bound: tuple[str, ...] = ()


# ---- scoring: scalars only ----------------------------------------------------------------


def p_alive(params: BgNbdParams, x: int, t_x: float, T: float) -> float:
    """P(the customer is still alive at age T | x, t_x, T).

    1 / (1 + [x > 0] * a / (b + x - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x)).
    With no repeat purchase the model has had no chance to see a drop-out, so it is 1.
    """
    if x <= 0:
        return 1.0
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    # In logs: the power overflows for a frequent buyer long lapsed (a huge ratio ** r+x).
    log_odds = math.log(a / (b + x - 1)) + (r + x) * math.log((alpha + T) / (alpha + t_x))
    if log_odds > 700.0:
        return 0.0
    return 1.0 / (1.0 + math.exp(log_odds))


def expected_purchases(params: BgNbdParams, t: float, x: int, t_x: float, T: float) -> float:
    """E[purchases in (T, T + t] | x, t_x, T] (FHL 2005, eq. 10), t in days.

    (a + b + x - 1) / (a - 1) * [1 - ((alpha+T) / (alpha+T+t)) ** (r+x) *
    2F1(r+x, b+x; a+b+x-1; t / (alpha+T+t))] * P(alive).

    The hypergeometric term is evaluated after Pfaff's transformation,
    (1-z)^A 2F1(A, B; C; z) = 2F1(A, C-B; C; z / (z-1)), here 2F1(r+x, a-1; a+b+x-1;
    -t / (alpha+T)): one call instead of a power that underflows times a series that
    overflows for frequent buyers (z near 1 with large parameters).
    """
    if t <= 0:
        return 0.0
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    if abs(a - 1.0) < _A_NEAR_ONE:
        a = 1.0 + _A_NEAR_ONE
    from scipy.special import hyp2f1  # lazy: see score in model.py

    c = a + b + x - 1.0
    h = float(hyp2f1(r + x, a - 1.0, c, -t / (alpha + T)))
    return c / (a - 1.0) * (1.0 - h) * p_alive(params, x, t_x, T)


def p_no_purchase(params: BgNbdParams, t: float, x: int, t_x: float, T: float) -> float:
    """P(no purchase in (T, T + t] | x, t_x, T): the model's own "goes quiet" probability.

    A dead customer buys nothing; an alive one with rate lambda buys nothing for t days
    with probability e^(-lambda t), and integrating lambda over its posterior (the same
    Gamma integral as the likelihood, with alpha + T + t for alpha + T) gives
    P(alive) * ((alpha + T) / (alpha + T + t)) ** (r + x). So

        P(Y(t) = 0) = 1 - P(alive) * (1 - ((alpha + T) / (alpha + T + t)) ** (r + x)).

    Unlike P(alive) it is informative for one-order customers (x = 0, P(alive) = 1): the
    longer ago their only order, the lower their posterior rate and the likelier silence.
    """
    if t <= 0:
        return 1.0
    r, alpha = params.r, params.alpha
    quiet_if_alive = math.exp(-(r + x) * math.log1p(t / (alpha + T)))
    return 1.0 - p_alive(params, x, t_x, T) * (1.0 - quiet_if_alive)


def unconditional_expected_purchases(params: BgNbdParams, t: float) -> float:
    """E[X(t)]: repeat purchases of a customer in their first t days (FHL 2005, eq. 9).

    The conditional expectation of a customer just born (x = t_x = T = 0) is the same thing.
    """
    return expected_purchases(params, t, 0, 0.0, 0.0)


def p_alive_age(params: BgNbdParams, x: int, t_x: float, threshold: float) -> float | None:
    """The age T at which P(alive) falls to `threshold`, with no purchase in between.

    P(alive) only falls as T grows without a purchase, so this is when a grade built on it
    next changes: the core can schedule the customer's re-grade for then instead of
    scanning. Inverting p_alive: T = (alpha + t_x) * (c / d) ** (1 / (r + x)) - alpha, with
    c = (1 / threshold - 1) and d = a / (b + x - 1). None when it never falls that low
    (x = 0, or a threshold of 0); t_x when it is already at or below the threshold there.
    """
    if x <= 0 or not 0.0 < threshold < 1.0:
        return None
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    log_ratio = (math.log(1.0 / threshold - 1.0) - math.log(a / (b + x - 1))) / (r + x)
    if log_ratio <= 0.0:
        return t_x
    return (alpha + t_x) * math.exp(log_ratio) - alpha


# ---- fitting: numpy arrays ----------------------------------------------------------------


def log_likelihood(
    params: tuple[float, float, float, float] | BgNbdParams,
    x: FloatArray,
    t_x: FloatArray,
    T: FloatArray,
) -> FloatArray:
    """Per-customer log-likelihood ln L(r, alpha, a, b | x, t_x, T) (FHL 2005, eq. 6).

    L = B(a, b+x)/B(a, b) * G(r+x) alpha^r / (G(r) (alpha+T)^(r+x))
        + [x > 0] * B(a+1, b+x-1)/B(a, b) * G(r+x) alpha^r / (G(r) (alpha+t_x)^(r+x)),
    written as A1 + A2 + ln(e^A3 + [x > 0] e^A4) and summed with log-sum-exp.
    """
    from scipy.special import gammaln  # lazy: see score in model.py

    r, alpha, a, b = params.as_tuple() if isinstance(params, BgNbdParams) else params
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    a3 = -(r + x) * np.log(alpha + T)
    repeat = x > 0
    # b + x - 1 is only used where x > 0; elsewhere it is replaced by 1 to keep the log finite.
    a4 = np.where(
        repeat,
        np.log(a) - np.log(np.where(repeat, b + x - 1.0, 1.0)) - (r + x) * np.log(alpha + t_x),
        -np.inf,
    )
    return np.asarray(a1 + a2 + np.logaddexp(a3, a4), dtype=np.float64)


def _as_arrays(
    x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    xs = np.asarray(x, dtype=np.float64)
    txs = np.asarray(t_x, dtype=np.float64)
    ts = np.asarray(T, dtype=np.float64)
    if not (xs.shape == txs.shape == ts.shape) or xs.ndim != 1:
        raise ValueError("x, t_x and T must be 1-d and of one length")
    if xs.size == 0:
        raise ValueError("no customers to fit")
    if np.any(xs < 0) or np.any(xs != np.floor(xs)):
        raise ValueError("x (repeat purchases) must be whole numbers >= 0")
    if np.any(txs < 0) or np.any(txs > ts) or not np.all(np.isfinite(ts)):
        raise ValueError("need 0 <= t_x <= T (finite) for every customer")
    if np.any((xs == 0) & (txs != 0)):
        raise ValueError("t_x must be 0 for a customer with no repeat purchase")
    return xs, txs, ts


def numerical_hessian(fn: Objective, at: FloatArray, step: float = _HESSIAN_STEP) -> FloatArray:
    """Central-difference Hessian of a scalar function of a vector (4 evaluations per entry)."""
    n = at.size
    hess = np.empty((n, n))
    f0 = float(fn(at))
    for i in range(n):
        ei = np.zeros(n)
        ei[i] = step
        hess[i, i] = (float(fn(at + ei)) - 2.0 * f0 + float(fn(at - ei))) / step**2
        for j in range(i):
            ej = np.zeros(n)
            ej[j] = step
            hess[i, j] = hess[j, i] = (
                float(fn(at + ei + ej))
                - float(fn(at + ei - ej))
                - float(fn(at - ei + ej))
                + float(fn(at - ei - ej))
            ) / (4.0 * step**2)
    return hess


def standard_errors(
    neg_ll_log: Objective, log_params: FloatArray, names: tuple[str, ...]
) -> dict[str, float]:
    """SEs of the natural parameters from the Hessian of the NLL in log-parameters.

    At the optimum the gradient is zero, so the Hessian in log-parameters is J H J with
    J = diag(theta); the delta method then gives Cov(theta) = J Cov(log theta) J, i.e.
    SE(theta_i) = theta_i * SE(log theta_i). NaN when the Hessian is not positive definite
    (a flat direction: that parameter is not identified by the data).
    """
    hess = numerical_hessian(neg_ll_log, log_params)
    theta = np.exp(log_params)
    try:
        cov = np.linalg.inv(hess)
    except np.linalg.LinAlgError:
        return dict.fromkeys(names, math.nan)
    diag = np.diag(cov)
    return {
        name: float(theta[i] * math.sqrt(diag[i])) if diag[i] > 0 else math.nan
        for i, name in enumerate(names)
    }


def fit(
    x: npt.ArrayLike,
    t_x: npt.ArrayLike,
    T: npt.ArrayLike,
    initial: BgNbdParams | None = None,
) -> tuple[BgNbdParams, FitReport]:
    """Maximum-likelihood (r, alpha, a, b) for customers' (x, t_x, T), times in days.

    L-BFGS-B on the log-parameters (positivity for free, and a better-scaled surface),
    inside a box of e^-12..e^12. The report carries the maximised log-likelihood, whether
    the optimiser converged, and standard errors from a numerical Hessian.
    """
    xs, txs, ts = _as_arrays(x, t_x, T)
    n = xs.size
    if initial is None:
        # Moment-ish start: r = 1 and a mean rate of (x + 1) / (T + 1) per day, which puts
        # alpha on the scale of the data (days), and a drop-out mix centred at p = 1/3.
        rate = float((xs.mean() + 1.0) / (ts.mean() + 1.0))
        initial = BgNbdParams(r=1.0, alpha=1.0 / rate, a=1.0, b=2.0)

    def neg_ll(log_params: FloatArray) -> float:
        r, alpha, a, b = np.exp(log_params)
        value = -float(np.sum(log_likelihood((r, alpha, a, b), xs, txs, ts)))
        # The optimiser treats inf as "worse"; NaN would derail it.
        return value if math.isfinite(value) else 1e300

    start = np.log(np.array(initial.as_tuple(), dtype=np.float64))
    bounds = [(-_LOG_BOUND, _LOG_BOUND)] * 4
    from scipy.optimize import minimize  # lazy: see score in model.py

    res = minimize(neg_ll, start, method="L-BFGS-B", bounds=bounds)
    names = ("r", "alpha", "a", "b")
    log_opt = np.asarray(res.x, dtype=np.float64)
    params = BgNbdParams(*(float(v) for v in np.exp(log_opt)))
    at_bound = tuple(
        name for name, v in zip(names, log_opt, strict=True) if abs(v) > _LOG_BOUND - 1e-6
    )
    report = FitReport(
        log_likelihood=-float(res.fun),
        n_customers=int(n),
        converged=bool(res.success) and not at_bound,
        iterations=int(res.nit),
        message=str(res.message),
        se=standard_errors(neg_ll, log_opt, names),
        at_bound=at_bound,
    )
    return params, report
