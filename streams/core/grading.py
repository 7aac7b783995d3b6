"""The grade snapshot of a customer, and when it can next change.

`grade(state, now, policy)` is a pure function: it never mutates `state` and reads no
clock. The snapshot is what the customer-grades topic, Redis and the HTTP API carry.

>>> from streams.core.policy import load_policy
>>> from streams.core.state import new_state
>>> p = load_policy()
>>> g = grade(new_state("c-1"), 0, p)
>>> g["rfm"]["code"], g["segment"], g["tier"], g["lifecycle"], g["intent_grade"]
('R0F0M0', 'Prospect', 'potential', 'prospect', 'D')

A first order of 4,000 USD makes a new, regular customer; 100 days later, with no other
event, recency has moved to R3 and the customer is silent:

>>> from streams.core.engine import apply
>>> s = new_state("c-1")
>>> order = {"event_id": "e1", "customer_id": "c-1", "type": "order_placed",
...          "occurred_at": "2024-01-10T12:00:00Z", "order_id": "o1",
...          "amount": 4000, "currency": "USD"}
>>> [o["type"] for o in apply(s, order, p).outputs]
['tier_changed', 'lifecycle_changed']
>>> g = grade(s, s.as_of, p)
>>> g["rfm"]["code"], g["segment"], g["tier"], g["lifecycle"], g["value_class"]
('R4F1M2', 'New', 'regular', 'new', 'B')
>>> later = grade(s, s.as_of + 100 * 86400, p)
>>> later["rfm"]["recency_days"], later["rfm"]["code"], later["lifecycle"]
(100, 'R3F1M2', 'silent')
>>> s.as_of == 1704888000  # grade() looked ahead on a copy
True
>>> next_due(s, p) - s.as_of  # silence may lift churn to medium after 5 days (at the
... #                             worst engagement: a lower bound)
432000
"""

from __future__ import annotations

import math
from typing import Any

from streams.core.churn import churn_reasons, churn_score
from streams.core.compiled import DAY, CompiledPolicy
from streams.core.due import next_due_c
from streams.core.intent import intent
from streams.core.lifecycle import stage_name as _stage_name
from streams.core.policy import Policy
from streams.core.rfm import rfm, segment, value_class
from streams.core.state import CustomerState, decode, encode
from streams.core.stepping import regrade, roll
from streams.core.tier_progress import progress
from streams.core.timefmt import format_rfc3339
from streams.models.model import score as model_score

__all__ = ["build_snapshot", "grade", "model_block", "next_due"]


def model_block(s: CustomerState, t: int, c: CompiledPolicy) -> dict[str, Any]:
    """The churn model's figures at ``t`` (the snapshot's ``churn.model``; policies with a
    model only). The full `score` (CLV's hypergeometric calls, ~15 µs) runs here, when a
    snapshot is built, never per event. A customer with no live order has no BG/NBD clock:
    the figures are then null."""
    m = c.model
    assert m is not None
    first, last, n = s.first_order, s.last_order, s.live_orders
    if n <= 0 or first is None or last is None:
        figures: tuple[float | None, ...] = (None,) * 5
    else:
        win = s.win_count
        sc = model_score(
            m,
            x=n - 1,
            t_x_days=(last - first) / DAY,
            T_days=(t - first) / DAY,
            mean_order_value=max(0, s.win_cents) / 100 / win if win > 0 else math.nan,
            value_orders=max(0, win),
        )
        figures = (
            round(sc.p_alive, 4),
            round(sc.p_no_order_90d, 4),
            round(sc.expected_90d, 4),
            round(sc.expected_365d, 4),
            round(sc.clv, 2),
        )
    keys = ("p_alive", "p_no_order_90d", "expected_90d", "expected_365d", "clv")
    return {"model_version": m.model_version, **dict(zip(keys, figures, strict=True))}


def build_snapshot(s: CustomerState, t: int, c: CompiledPolicy) -> dict[str, Any]:
    """The grade at ``t`` of a state settled at ``t`` (``t == s.as_of``)."""
    r = rfm(s, t, c)
    score, band = churn_score(s, t, c)
    churn: dict[str, Any] = {
        "score": score,
        "band": c.band_names[band],
        "reasons": churn_reasons(s, t, c) if score > 0 else [],
    }
    if c.model is not None:
        churn["model"] = model_block(s, t, c)
    return {
        "customer_id": s.customer_id,
        "as_of": format_rfc3339(t),
        "seq": s.seq,
        "policy_version": c.version,
        "rfm": {
            "recency_days": r.recency_days,
            "frequency": r.frequency,
            "monetary": round(r.cents / 100, 2),
            "r": r.r,
            "f": r.f,
            "m": r.m,
            "code": f"R{r.r}F{r.f}M{r.m}",
        },
        "segment": segment(r.r, r.f, r.m, c),
        "tier": s.tier or c.tier_names[0],
        "progress": progress(s, c),
        "lifecycle": _stage_name(s.stage),
        "intent_grade": intent(s, t, c).grade,
        "value_class": value_class(r.cents, c),
        "churn": churn,
    }


def grade(state: CustomerState, now: int, policy: Policy) -> dict[str, Any]:
    """The grade snapshot at ``now`` (>= state.as_of), as if no event arrived meanwhile.

    Looking ahead replays the due times on a copy, so tier grace and alert holds come out
    exactly as `advance` would make them; `state` itself is left untouched.
    """
    c = policy.compiled
    if now < state.as_of:
        raise ValueError(f"now ({now}) is before the state's as_of ({state.as_of})")
    s = state
    if now > state.as_of or state.policy_version != c.version:
        s = decode(encode(state))
        if s.policy_version != c.version:
            regrade(s, s.as_of, c)
        roll(s, now, c)
    return build_snapshot(s, now, c)


def next_due(state: CustomerState, policy: Policy) -> int | None:
    """The earliest time after state.as_of at which the grade may change without an event.

    Covers recency bin edges, the oldest order day leaving the window, lifecycle
    thresholds (new ends, silent, churned, reactivated ends), tier grace end, interaction
    and complaint days moving through their windows, survey expiry, the churn score
    reaching the next band as time passes, and an alert cooldown holding back a change.
    """
    return next_due_c(state, policy.compiled)
