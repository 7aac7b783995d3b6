"""BG/NBD: closed forms against independent quadrature, limits, and parameter recovery."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np
import pytest
from scipy import integrate, stats

from streams.models import bgnbd
from streams.models.bgnbd import (
    BgNbdParams,
    expected_purchases,
    p_alive,
    p_alive_age,
    p_no_purchase,
)
from tests.models.sim import simulate_bgnbd

# CDNOW (FHL 2005, fitted in weeks); the closed forms are invariant to the time unit when
# alpha and every time scale together, so weeks are used as they were published.
CDNOW = BgNbdParams(r=0.243, alpha=4.414, a=0.793, b=2.426)
OTHER = BgNbdParams(r=1.5, alpha=20.0, a=2.5, b=4.0)  # a > 1: the other branch of (a - 1)
CASES = [(39.0, 2, 30.43, 38.86), (39.0, 0, 0.0, 20.0), (10.0, 7, 35.0, 40.0), (52.0, 1, 2.0, 60.0)]


def _beta_quad(f: Callable[[float], float], a: float, b: float) -> float:
    """int_0^1 f(p) p^(a-1) (1-p)^(b-1) dp / B(a, b), with the end-point weights exact."""
    val = integrate.quad(f, 0.0, 1.0, weight="alg", wvar=(a - 1.0, b - 1.0), epsabs=0, epsrel=1e-11)
    return float(val[0]) / math.exp(math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b))


def _by_quadrature(par: BgNbdParams, t: float, x: int, t_x: float, T: float) -> tuple[float, float]:
    """(P(alive), E[Y(t)]) by integrating the individual-level model over the p mix.

    Derived without the paper's Beta-function algebra or the hypergeometric function: lambda
    is integrated out in closed form (Gamma integrals; the common factor
    G(r+x) alpha^r / (G(r) (alpha+T)^(r+x)) cancels), p numerically. Given (lambda, p),
    P(data, alive) = (1-p)^x lambda^x e^(-lambda T), P(data, dead after the last purchase)
    = p (1-p)^(x-1) lambda^x e^(-lambda t_x), and E[Y(t) | alive] = (1 - e^(-lambda p t)) / p.
    """
    r, alpha, a, b = par.as_tuple()
    k = r + x
    dead_ratio = ((alpha + T) / (alpha + t_x)) ** k

    def alive(p: float) -> float:
        return (1 - p) ** x

    def dead(p: float) -> float:
        return p * (1 - p) ** (x - 1) * dead_ratio if x > 0 else 0.0

    def purchases(p: float) -> float:
        # (1 - (1 + p t / (alpha+T)) ** -k) / p, written to stay exact as p -> 0 (its limit
        # there, k t / (alpha + T), is where the integrator starts).
        if p == 0.0:
            return k * t / (alpha + T)
        return (1 - p) ** x * -math.expm1(-k * math.log1p(p * t / (alpha + T))) / p

    den = _beta_quad(lambda p: alive(p) + dead(p), a, b)
    return _beta_quad(alive, a, b) / den, _beta_quad(purchases, a, b) / den


@pytest.mark.parametrize("par", [CDNOW, OTHER])
@pytest.mark.parametrize(("t", "x", "t_x", "T"), CASES)
def test_closed_forms_match_quadrature(
    par: BgNbdParams, t: float, x: int, t_x: float, T: float
) -> None:
    alive_q, expected_q = _by_quadrature(par, t, x, t_x, T)
    assert p_alive(par, x, t_x, T) == pytest.approx(alive_q, rel=1e-8)
    assert expected_purchases(par, t, x, t_x, T) == pytest.approx(expected_q, rel=1e-7)


@pytest.mark.parametrize("par", [CDNOW, OTHER])
@pytest.mark.parametrize(("t", "x", "t_x", "T"), CASES)
def test_p_no_purchase_matches_quadrature(
    par: BgNbdParams, t: float, x: int, t_x: float, T: float
) -> None:
    # Given (lambda, p) the joint factorises, so every piece is a 1-D integral, and here
    # lambda is integrated numerically too (nothing borrowed from the closed forms):
    # P(no purchase in t, data) = E_p[(1-p)^x] * E_lambda[lambda^x e^(-lambda (T + t))];
    # P(data) = E_p[(1-p)^x] * E_l[l^x e^(-l T)] + [x>0] E_p[p (1-p)^(x-1)] * E_l[l^x e^(-l t_x)].
    r, alpha, a, b = par.as_tuple()

    def over_lambda(s: float) -> float:
        def f(lam: float) -> float:
            return float(lam**x * math.exp(-lam * s) * stats.gamma.pdf(lam, r, scale=1 / alpha))

        # Split at 1 / alpha: the Gamma density's spike at 0 (r < 1) sits left of it.
        split = 1.0 / alpha
        # Relative tolerance only: these integrals are ~1e-9, below quad's default epsabs.
        tol = {"limit": 200, "epsabs": 0.0, "epsrel": 1e-11}
        pieces = (
            integrate.quad(f, 0, split, **tol),
            integrate.quad(f, split, np.inf, **tol),
        )
        return float(sum(val for val, _ in pieces))

    alive_p = _beta_quad(lambda p: (1 - p) ** x, a, b)
    dead_p = _beta_quad(lambda p: p * (1 - p) ** (x - 1), a, b) if x > 0 else 0.0
    data = alive_p * over_lambda(T) + (dead_p * over_lambda(t_x) if x > 0 else 0.0)
    alive_quiet = alive_p * over_lambda(T + t)
    # Dead customers are quiet for sure; the alive ones only if no purchase comes.
    want = 1 - (alive_p * over_lambda(T) - alive_quiet) / data
    assert p_no_purchase(par, t, x, t_x, T) == pytest.approx(want, rel=1e-7)


def test_cdnow_published_conditional_expectation() -> None:
    # FHL 2005, section 5: the customer with x = 2, t_x = 30.43, T = 38.86 (weeks) is expected
    # to make 1.226 purchases in the next 39 weeks. The quadrature above agrees independently.
    assert expected_purchases(CDNOW, 39.0, 2, 30.43, 38.86) == pytest.approx(1.226, abs=5e-4)
    days = BgNbdParams(r=CDNOW.r, alpha=CDNOW.alpha * 7, a=CDNOW.a, b=CDNOW.b)
    assert expected_purchases(days, 273.0, 2, 213.01, 272.02) == pytest.approx(1.226, abs=5e-4)


def test_log_likelihood_matches_quadrature() -> None:
    # L = G(r+x) alpha^r / (G(r) (alpha+T)^(r+x)) * E_p[(1-p)^x + [x>0] p (1-p)^(x-1) ratio].
    xs = np.array([0.0, 1.0, 2.0, 7.0])
    txs = np.array([0.0, 2.0, 30.43, 35.0])
    ts = np.array([20.0, 60.0, 38.86, 40.0])
    got = bgnbd.log_likelihood(CDNOW, xs, txs, ts)
    r, alpha, a, b = CDNOW.as_tuple()
    for i, (x_, tx_, t_) in enumerate(zip(xs, txs, ts, strict=True)):
        x = int(x_)
        ratio = ((alpha + t_) / (alpha + tx_)) ** (r + x)

        def mix(p: float, x: int = x, ratio: float = ratio) -> float:
            return (1 - p) ** x + (p * (1 - p) ** (x - 1) * ratio if x > 0 else 0.0)

        head = math.lgamma(r + x) - math.lgamma(r) + r * math.log(alpha)
        want = head - (r + x) * math.log(alpha + t_) + math.log(_beta_quad(mix, a, b))
        assert got[i] == pytest.approx(want, rel=1e-9)


def test_p_alive_limits() -> None:
    days = BgNbdParams(r=0.243, alpha=4.414 * 7, a=0.793, b=2.426)
    # No repeat purchase: the model has seen no chance to drop out.
    assert p_alive(days, 0, 0.0, 1000.0) == 1.0
    # Bought just now: only the chance of having dropped out at that very purchase remains,
    # a / (b + x - 1), which shrinks as the purchases pile up.
    assert p_alive(days, 10, 300.0, 300.0) == pytest.approx(1 / (1 + 0.793 / (2.426 + 9)))
    assert p_alive(days, 50, 300.0, 300.0) > 0.98
    # A frequent buyer silent for over a year is almost surely gone.
    assert p_alive(days, 20, 100.0, 500.0) < 1e-3
    # Falls with time since the last purchase; never below 0 even when the odds overflow.
    ages = [p_alive(days, 5, 100.0, 100.0 + d) for d in range(0, 1000, 50)]
    assert ages == sorted(ages, reverse=True)
    assert p_alive(days, 10_000, 1.0, 5000.0) == 0.0


def test_p_no_purchase_limits() -> None:
    days = BgNbdParams(r=0.243, alpha=4.414 * 7, a=0.793, b=2.426)
    assert p_no_purchase(days, 0.0, 3, 50.0, 80.0) == 1.0
    # Never below the chance of being dead, and it grows as the only order recedes (x = 0,
    # where P(alive) is stuck at 1 and says nothing).
    assert p_no_purchase(days, 90, 3, 50.0, 400.0) >= 1 - p_alive(days, 3, 50.0, 400.0)
    quiet = [p_no_purchase(days, 90, 0, 0.0, T) for T in (1.0, 30.0, 180.0, 720.0)]
    assert quiet == sorted(quiet)
    assert quiet[0] < quiet[-1] < 1.0


def test_expected_purchases_monotone() -> None:
    days = BgNbdParams(r=0.243, alpha=4.414 * 7, a=0.793, b=2.426)
    for x, t_x, T in [(0, 0.0, 100.0), (3, 200.0, 250.0), (12, 300.0, 700.0), (80, 690.0, 700.0)]:
        horizons = [expected_purchases(days, t, x, t_x, T) for t in (0, 1, 30, 90, 365, 3650)]
        assert horizons[0] == 0.0
        assert all(b > a for a, b in itertools.pairwise(horizons))
        # Later (no purchase meanwhile) means fewer expected purchases.
        assert expected_purchases(days, 90, x, t_x, T + 100) < horizons[3]
    # A customer just born is the population: E[X(t)] of eq. 9.
    assert bgnbd.unconditional_expected_purchases(CDNOW, 39.0) == pytest.approx(
        expected_purchases(CDNOW, 39.0, 0, 0.0, 0.0)
    )


def test_a_equal_to_one_is_continuous() -> None:
    at_one = BgNbdParams(r=0.5, alpha=10.0, a=1.0, b=3.0)
    near = [BgNbdParams(r=0.5, alpha=10.0, a=1.0 + d, b=3.0) for d in (-1e-4, 1e-4)]
    got = expected_purchases(at_one, 90, 4, 50.0, 80.0)
    assert math.isfinite(got)
    for par in near:
        assert expected_purchases(par, 90, 4, 50.0, 80.0) == pytest.approx(got, rel=1e-3)


def test_p_alive_age_inverts_p_alive() -> None:
    days = BgNbdParams(r=0.243, alpha=30.9, a=0.793, b=2.426)
    for x, t_x in [(1, 10.0), (4, 120.0), (30, 400.0)]:
        for threshold in (0.9, 0.5, 0.1):
            age = p_alive_age(days, x, t_x, threshold)
            assert age is not None
            if age > t_x:
                assert p_alive(days, x, t_x, age) == pytest.approx(threshold, rel=1e-9)
            else:  # already below at the last purchase
                assert p_alive(days, x, t_x, t_x) <= threshold
    assert p_alive_age(days, 0, 0.0, 0.5) is None


def _fit_simulated(seed: int, n: int) -> tuple[np.ndarray, BgNbdParams, bgnbd.FitReport]:
    rng = np.random.default_rng(seed)
    T = rng.uniform(30.0, 400.0, size=n)
    x, t_x = simulate_bgnbd(rng, n, 0.24, 4.4, 0.79, 2.4, T)
    params, report = bgnbd.fit(x, t_x, T)
    return x, params, report


def test_fit_recovers_simulated_parameters() -> None:
    _x, params, report = _fit_simulated(seed=0, n=5000)
    assert report.converged
    assert report.n_customers == 5000
    assert not report.at_bound
    assert report.log_likelihood < 0
    true = {"r": 0.24, "alpha": 4.4, "a": 0.79, "b": 2.4}
    for name, value in true.items():
        est, se = getattr(params, name), report.se[name]
        # Honest tolerance: the sampling error the fit itself reports.
        assert abs(est - value) < 3 * se, (name, est, se)
        assert se < 0.25 * value  # and 5000 customers do pin every parameter down


def test_standard_errors_match_the_spread_of_estimates() -> None:
    # The Hessian's SEs should describe how much estimates vary from sample to sample.
    names = ("r", "alpha", "a", "b")
    estimates, ses = [], []
    for seed in range(100, 112):
        _, params, report = _fit_simulated(seed, n=2000)
        estimates.append(params.as_tuple())
        ses.append([report.se[k] for k in names])
    spread = np.std(np.array(estimates), axis=0, ddof=1)
    typical_se = np.mean(np.array(ses), axis=0)
    ratio = spread / typical_se
    # 12 replications estimate a standard deviation to about +-20%; allow for it.
    assert np.all((ratio > 0.55) & (ratio < 1.6)), dict(zip(names, ratio, strict=True))


def test_fit_refuses_inconsistent_input() -> None:
    with pytest.raises(ValueError, match="t_x <= T"):
        bgnbd.fit([1.0], [5.0], [4.0])
    with pytest.raises(ValueError, match="whole numbers"):
        bgnbd.fit([1.5], [1.0], [4.0])
    with pytest.raises(ValueError, match="t_x must be 0"):
        bgnbd.fit([0.0], [1.0], [4.0])
    with pytest.raises(ValueError, match="no customers"):
        bgnbd.fit([], [], [])


def test_params_refuse_non_positive() -> None:
    with pytest.raises(ValueError, match="alpha"):
        BgNbdParams(r=1.0, alpha=0.0, a=1.0, b=1.0)
    with pytest.raises(ValueError, match="b must"):
        BgNbdParams(r=1.0, alpha=1.0, a=1.0, b=math.inf)
