"""Gamma-Gamma spend model (Fader, Hardie & Lee 2005, "RFM and CLV"; Fader & Hardie 2013).

Each order's value z ~ Gamma(p, nu) (shape p, rate nu); across customers nu ~ Gamma(q,
gamma) (shape q, rate gamma, written ``v`` here). Order values are assumed independent of
the purchase process, so the spend model multiplies the BG/NBD expectation.

A customer is summarised by ``n`` orders and their mean value ``m``. The mean of n
Gamma(p, nu) values is Gamma(pn, n nu); integrating nu out gives the likelihood

    f(m | n) = G(pn + q) / (G(pn) G(q)) * v^q * m^(pn - 1) * n^(pn) / (v + n m)^(pn + q)

and the posterior mean of a customer's expected order value E[z] = p / nu:

    E[M | n, m] = p (v + n m) / (p n + q - 1)
                = (q - 1) / (p n + q - 1) * p v / (q - 1)  +  p n / (p n + q - 1) * m,

a weighted average of the population mean p v / (q - 1) and the customer's own mean,
trusting the latter more as n grows. Needs q > 1 for the population mean to exist.

>>> gg = GammaGammaParams(p=6.25, q=3.74, v=15.44)  # CDNOW, FHL 2005
>>> round(gg.population_mean(), 2)
35.22
>>> round(expected_order_value(gg, 3, 50.0), 2)
48.12
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from streams.models.bgnbd import FitReport, FloatArray, standard_errors

__all__ = ["GammaGammaParams", "expected_order_value", "fit", "log_likelihood"]

_LOG_BOUND = 12.0


@dataclass(frozen=True, slots=True)
class GammaGammaParams:
    """p: shape of order values; (q, v): shape and rate of the customers' value-rate mix."""

    p: float
    q: float
    v: float  # in the currency: it scales order values

    def __post_init__(self) -> None:
        for name in ("p", "q", "v"):
            value = getattr(self, name)
            if not (isinstance(value, float | int) and math.isfinite(value) and value > 0):
                raise ValueError(f"Gamma-Gamma {name} must be a finite number > 0, not {value!r}")
        if self.q <= 1:
            # Not only a fitting nuisance: the population mean p v / (q - 1) is infinite.
            raise ValueError(f"Gamma-Gamma q must be > 1 (a finite mean order value), not {self.q}")

    def as_tuple(self) -> tuple[float, float, float]:
        return (self.p, self.q, self.v)

    def population_mean(self) -> float:
        """E[order value] of a customer we know nothing about: p v / (q - 1)."""
        return self.p * self.v / (self.q - 1.0)


def expected_order_value(params: GammaGammaParams, n: int, mean_value: float) -> float:
    """Posterior mean order value of a customer with `n` orders of mean `mean_value`.

    n = 0 (or a negative or non-finite mean) gives the population mean; a mean of 0 (all
    refunded) is a legitimate observation and pulls the estimate down.
    """
    p, q, v = params.p, params.q, params.v
    if n <= 0 or not math.isfinite(mean_value) or mean_value < 0:
        return p * v / (q - 1.0)
    return p * (v + n * mean_value) / (p * n + q - 1.0)


def log_likelihood(
    params: tuple[float, float, float] | GammaGammaParams, n: FloatArray, m: FloatArray
) -> FloatArray:
    """Per-customer ln f(m | n; p, q, v) (see the module docstring); needs m > 0."""
    from scipy.special import gammaln  # lazy: see score in model.py

    p, q, v = params.as_tuple() if isinstance(params, GammaGammaParams) else params
    pn = p * n
    out = (
        gammaln(pn + q)
        - gammaln(pn)
        - gammaln(q)
        + q * np.log(v)
        + (pn - 1.0) * np.log(m)
        + pn * np.log(n)
        - (pn + q) * np.log(v + n * m)
    )
    return np.asarray(out, dtype=np.float64)


def fit(
    n: npt.ArrayLike, m: npt.ArrayLike, initial: GammaGammaParams | None = None
) -> tuple[GammaGammaParams, FitReport]:
    """Maximum-likelihood (p, q, v) from customers' order counts `n` and mean values `m`.

    Pass repeat customers only (n >= 2) with m > 0: a single order says nothing about the
    spread within a customer, and a zero mean has zero density. L-BFGS-B on log-parameters
    with q kept above 1 (log(q - 1) is the free parameter), SEs from a numerical Hessian.
    """
    ns = np.asarray(n, dtype=np.float64)
    ms = np.asarray(m, dtype=np.float64)
    if ns.shape != ms.shape or ns.ndim != 1 or ns.size == 0:
        raise ValueError("n and m must be 1-d, of one length, and not empty")
    if np.any(ns < 1) or np.any(ms <= 0) or not np.all(np.isfinite(ms)):
        raise ValueError("need n >= 1 and finite m > 0 for every customer")
    if initial is None:
        # Method-of-moments flavoured start: a population mean equal to the sample's.
        initial = GammaGammaParams(p=2.0, q=3.0, v=float(ms.mean()))

    def unpack(free: FloatArray) -> tuple[float, float, float]:
        lp, lq1, lv = free
        return math.exp(lp), 1.0 + math.exp(lq1), math.exp(lv)

    def neg_ll(free: FloatArray) -> float:
        value = -float(np.sum(log_likelihood(unpack(free), ns, ms)))
        return value if math.isfinite(value) else 1e300

    from scipy.optimize import minimize  # lazy: see score in model.py

    start = np.array([math.log(initial.p), math.log(initial.q - 1.0), math.log(initial.v)])
    res = minimize(neg_ll, start, method="L-BFGS-B", bounds=[(-_LOG_BOUND, _LOG_BOUND)] * 3)
    free = np.asarray(res.x, dtype=np.float64)
    p, q, v = unpack(free)

    # SEs on the natural scale: the free parameters are (log p, log(q-1), log v), so reuse
    # the log-parameter helper on (log p, log q, log v) directly.
    def neg_ll_logs(logs: FloatArray) -> float:
        lp, lq, lv = logs
        q_ = math.exp(lq)
        if q_ <= 1.0:
            return 1e300
        value = -float(np.sum(log_likelihood((math.exp(lp), q_, math.exp(lv)), ns, ms)))
        return value if math.isfinite(value) else 1e300

    names = ("p", "q", "v")
    se = standard_errors(neg_ll_logs, np.log(np.array([p, q, v])), names)
    at_bound = tuple(
        name for name, val in zip(names, free, strict=True) if abs(val) > _LOG_BOUND - 1e-6
    )
    report = FitReport(
        log_likelihood=-float(res.fun),
        n_customers=int(ns.size),
        converged=bool(res.success) and not at_bound,
        iterations=int(res.nit),
        message=str(res.message),
        se=se,
        at_bound=at_bound,
    )
    return GammaGammaParams(p, q, v), report
