"""Simulators of the models' own generative stories, for parameter-recovery tests.

They follow the model definitions directly (not the likelihoods), so a fit that recovers
the parameters checks the likelihood code against the story it claims to describe.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def simulate_bgnbd(
    rng: np.random.Generator,
    n: int,
    r: float,
    alpha: float,
    a: float,
    b: float,
    T: FloatArray,
) -> tuple[FloatArray, FloatArray]:
    """(x, t_x) for `n` customers observed for T[i] days after their first purchase.

    lambda ~ Gamma(shape r, rate alpha); p ~ Beta(a, b). From the first purchase at 0, the
    customer buys after Exp(lambda) gaps while alive; after each repeat purchase they drop
    out with probability p (never right after the first: that is the BG/NBD convention).
    """
    lam = rng.gamma(r, 1.0 / alpha, size=n)
    p = rng.beta(a, b, size=n)
    x = np.zeros(n)
    t_x = np.zeros(n)
    now = np.zeros(n)
    active = np.ones(n, dtype=bool)
    # All customers step one purchase at a time, together; a customer leaves the loop
    # when their next purchase falls after T or when they drop out.
    while active.any():
        idx = np.flatnonzero(active)
        nxt = now[idx] + rng.exponential(1.0, size=idx.size) / lam[idx]
        inside = nxt <= T[idx]
        buyers = idx[inside]
        x[buyers] += 1
        t_x[buyers] = nxt[inside]
        now[buyers] = nxt[inside]
        active[idx[~inside]] = False
        dropped = buyers[rng.random(buyers.size) < p[buyers]]
        active[dropped] = False
    return x, t_x


def simulate_spend(
    rng: np.random.Generator, n_orders: FloatArray, p: float, q: float, v: float
) -> FloatArray:
    """Mean order value of each customer's n orders: nu ~ Gamma(q, rate v), z ~ Gamma(p, nu)."""
    nu = rng.gamma(q, 1.0 / v, size=n_orders.size)
    counts = n_orders.astype(np.int64)
    # The sum of n Gamma(p, nu) values is Gamma(n p, nu): one draw per customer.
    totals = rng.gamma(p * counts, 1.0 / nu)
    return np.asarray(totals / counts, dtype=np.float64)
