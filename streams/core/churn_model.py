"""The churn model's signal (docs/models.md): a customer's BG/NBD clock and, from it,
P(alive) and P(no order in the next 90 days) at a time ``t``, in closed form. Apart from
`churn` because only a policy with ``[churn.model]`` uses it and the band's due times
(`churn_due`) search the signal on their own; `streams.models.model.score` does the same
arithmetic for the snapshot's model block.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from streams.core.compiled import DAY, CompiledPolicy
from streams.core.state import CustomerState


class ModelClock(NamedTuple):
    """A customer's BG/NBD summary while no order comes: what the signal needs besides t."""

    first: int  # first live order (epoch seconds): the customer's age T counts from it
    x: int  # repeat orders: live orders - 1
    t_x: float  # days from the first to the last order
    k: float  # r + x
    log_d: float  # ln(a / (b + x - 1)), 0 with x = 0


def model_clock(s: CustomerState, c: CompiledPolicy) -> ModelClock | None:
    """None for a customer with no live order (no BG/NBD clock) or a policy without model."""
    first, last = s.first_order, s.last_order
    if c.model is None or s.live_orders <= 0 or first is None or last is None:
        return None
    x = s.live_orders - 1
    t_x = (last - first) / DAY if x > 0 and last > first else 0.0
    log_d = math.log(c.model_a / (c.model_b + x - 1)) if x > 0 else 0.0
    return ModelClock(first, x, t_x, c.model_r + x, log_d)


def model_probs(k: ModelClock, t: int, c: CompiledPolicy) -> tuple[float, float]:
    """(P(alive), P(no order in the next 90 days)) at ``t``: the same arithmetic as
    `streams.models.model.score`, so the snapshot's model block and the score agree."""
    age = (t - k.first) / DAY  # T, the customer's age in days
    if age < k.t_x:
        age = k.t_x
    base = c.model_alpha + age
    if k.x == 0:
        alive = 1.0
    else:
        log_odds = k.log_d + k.k * math.log(base / (c.model_alpha + k.t_x))
        alive = 0.0 if log_odds > 700.0 else 1.0 / (1.0 + math.exp(log_odds))
    return alive, 1.0 - alive * (1.0 - math.exp(-k.k * math.log1p(90.0 / base)))


def model_signal(k: ModelClock, t: int, c: CompiledPolicy) -> float:
    """The churn model's part in [0, 1] at ``t``: P(no order in 90 days), or 1 - P(alive).
    Without a new order it only rises with ``t`` (the due times rely on it)."""
    alive, quiet = model_probs(k, t, c)
    return 1.0 - alive if c.model_p_alive else quiet


def model_sup(k: ModelClock, c: CompiledPolicy) -> float:
    """What the signal tends to as ``t`` grows without an order (never reached)."""
    return 0.0 if c.model_p_alive and k.x == 0 else 1.0
