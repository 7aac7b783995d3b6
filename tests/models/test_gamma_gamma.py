"""Gamma-Gamma: likelihood and posterior mean against quadrature, and parameter recovery."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np
import pytest
from scipy import integrate, stats

from streams.models import gamma_gamma
from streams.models.gamma_gamma import GammaGammaParams, expected_order_value
from tests.models.sim import simulate_spend

CDNOW = GammaGammaParams(p=6.25, q=3.74, v=15.44)  # FHL 2005, "RFM and CLV"


def _over_nu(f: Callable[[float], float], lo: float = 0.0, hi: float = np.inf) -> float:
    return float(integrate.quad(f, lo, hi, epsabs=0, epsrel=1e-11, limit=200)[0])


def test_log_likelihood_matches_quadrature() -> None:
    # The mean of n Gamma(p, nu) order values is Gamma(shape p n, rate n nu); integrate nu
    # over its Gamma(q, rate v) mix numerically, with scipy's own Gamma densities.
    p, q, v = CDNOW.as_tuple()
    ns = np.array([1.0, 2.0, 5.0, 20.0])
    ms = np.array([12.0, 35.0, 80.0, 41.5])
    got = gamma_gamma.log_likelihood(CDNOW, ns, ms)
    for i, (n, m) in enumerate(zip(ns, ms, strict=True)):

        def joint(nu: float, n: float = n, m: float = m) -> float:
            return float(
                stats.gamma.pdf(m, p * n, scale=1 / (n * nu)) * stats.gamma.pdf(nu, q, scale=1 / v)
            )

        assert got[i] == pytest.approx(math.log(_over_nu(joint)), rel=1e-8)


def test_expected_order_value_matches_posterior_quadrature() -> None:
    p, q, v = CDNOW.as_tuple()
    for n, m in [(1, 12.0), (3, 50.0), (20, 41.5)]:

        def post(nu: float, n: int = n, m: float = m) -> float:
            # Unnormalised posterior of nu: likelihood of the n orders' mean times the prior.
            return float(
                stats.gamma.pdf(m, p * n, scale=1 / (n * nu)) * stats.gamma.pdf(nu, q, scale=1 / v)
            )

        def value(nu: float, post: Callable[[float], float] = post) -> float:
            return p / nu * post(nu)  # E[z | nu] = p / nu, weighted by the posterior

        mean = _over_nu(value) / _over_nu(post)
        assert expected_order_value(CDNOW, n, m) == pytest.approx(mean, rel=1e-8)


def test_expected_order_value_shrinks_to_the_population() -> None:
    population = CDNOW.population_mean()
    assert population == pytest.approx(6.25 * 15.44 / 2.74)
    assert expected_order_value(CDNOW, 0, 100.0) == population  # nothing known
    assert expected_order_value(CDNOW, 1, math.nan) == population
    # The estimate lies between the population mean and the customer's own mean, and
    # trusts the customer's mean more with more orders.
    values = [expected_order_value(CDNOW, n, 100.0) for n in (1, 2, 5, 50, 5000)]
    assert all(population < a < b < 100.0 for a, b in itertools.pairwise(values))
    assert values[-1] == pytest.approx(100.0, rel=1e-3)
    # All refunded (mean 0) is an observation too: it pulls the estimate down.
    assert expected_order_value(CDNOW, 3, 0.0) < population


def test_fit_recovers_simulated_parameters() -> None:
    rng = np.random.default_rng(11)
    n = rng.integers(2, 15, size=4000).astype(np.float64)
    m = simulate_spend(rng, n, 6.25, 3.74, 15.44)
    params, report = gamma_gamma.fit(n, m)
    assert report.converged
    assert report.n_customers == 4000
    for name, value in (("p", 6.25), ("q", 3.74), ("v", 15.44)):
        est, se = getattr(params, name), report.se[name]
        # p and v trade off against each other (only their ratio to q is sharp), so the
        # SEs are wide; the population mean p v / (q - 1) is pinned much more tightly.
        assert abs(est - value) < 3 * se, (name, est, se)
    assert params.population_mean() == pytest.approx(CDNOW.population_mean(), rel=0.05)


def test_fit_and_params_refuse_bad_input() -> None:
    with pytest.raises(ValueError, match="m > 0"):
        gamma_gamma.fit([2.0, 3.0], [10.0, 0.0])
    with pytest.raises(ValueError, match="one length"):
        gamma_gamma.fit([2.0], [10.0, 3.0])
    with pytest.raises(ValueError, match="q must be > 1"):
        GammaGammaParams(p=1.0, q=0.9, v=1.0)
