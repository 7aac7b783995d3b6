"""The policy as plain values for the hot path: cents, seconds, tuples. No pydantic here.

`apply()` runs per event and must cost microseconds; reading nested pydantic attributes and
converting units on every call would dominate that. `compile_policy` does it once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from streams.core.policy import Policy
    from streams.models.model import Model

DAY: Final = 86_400
HOUR: Final = 3_600
SEVERITIES: Final = ("low", "medium", "high")
LIFECYCLE_STAGES: Final = ("prospect", "new", "active", "reactivated", "silent", "churned")


def _cents(amount: float) -> int:
    return round(amount * 100)


class CompiledPolicy:
    """Every policy value the core reads, pre-converted; built by `compile_policy`."""

    __slots__ = (
        "ability_min_cents",
        "alert_band",
        "band_mins",
        "band_names",
        "band_rank",
        "base",
        "ces_high_min",
        "churned_s",
        "complaint_days",
        "complaint_half",
        "complaint_steepness",
        "cooldown_s",
        "csat_low_max",
        "dedup_max",
        "engagement_min_baseline",
        "f_min",
        "full_price_max_discount",
        "grace_s",
        "half_days",
        "intent_days",
        "intent_half_days",
        "lateness_s",
        "m_min_cents",
        "max_complaints",
        "max_orders",
        "min_calls",
        "min_purchase_inquiries",
        "min_site_store",
        "model",
        "model_a",
        "model_alpha",
        "model_b",
        "model_p_alive",
        "model_r",
        "model_version",
        "new_s",
        "nps_detractor_max",
        "open_weights",
        "orders_exponent",
        "prior_days",
        "r_max_days",
        "rates",
        "reactivated_s",
        "recent_weights",
        "repeat_visit_days",
        "satisfied_max_severity",
        "segments",
        "silent_s",
        "survey_age_s",
        "tier_names",
        "tier_rank",
        "tier_rules",
        "unit_cents",
        "value_a_cents",
        "value_b_cents",
        "version",
        "w_complaints",
        "w_engagement",
        "w_model",
        "w_recency",
        "w_surveys",
        "warning_s",
        "window_days",
    )

    version: str
    base: str
    rates: dict[str, float]
    lateness_s: int
    dedup_max: int
    window_days: int
    unit_cents: float
    r_max_days: tuple[int, ...]
    f_min: tuple[int, ...]
    m_min_cents: tuple[float, ...]
    segments: tuple[tuple[str, int, int, int, int, int, int], ...]
    tier_names: tuple[str, ...]
    tier_rank: dict[str, int]
    tier_rules: tuple[tuple[int | None, int | None, int | None], ...]
    grace_s: int
    warning_s: int
    new_s: int
    silent_s: int
    churned_s: int
    reactivated_s: int
    intent_days: int
    intent_half_days: int
    ability_min_cents: int
    satisfied_max_severity: int
    repeat_visit_days: int
    min_calls: int
    min_site_store: int
    min_purchase_inquiries: int
    full_price_max_discount: float
    value_a_cents: int
    value_b_cents: int
    alert_band: int
    cooldown_s: int
    w_recency: float
    w_complaints: float
    w_surveys: float
    w_engagement: float
    band_names: tuple[str, ...]
    band_rank: dict[str, int]
    band_mins: tuple[float, ...]
    half_days: float
    prior_days: float
    orders_exponent: float
    complaint_days: int
    complaint_half: float
    complaint_steepness: float
    open_weights: tuple[float, float, float]
    recent_weights: tuple[float, float, float]
    survey_age_s: int
    nps_detractor_max: int
    csat_low_max: int
    ces_high_min: int
    engagement_min_baseline: int
    max_orders: int
    max_complaints: int
    # The churn model (None: no model part) and what its per-event signal reads,
    # unpacked: BG/NBD r, alpha (days), a, b.
    model: Model | None
    model_version: str
    model_p_alive: bool  # signal 1 - P(alive) instead of P(no order in 90 days)
    w_model: float
    model_r: float
    model_alpha: float
    model_a: float
    model_b: float

    def __eq__(self, other: object) -> bool:
        # Two equal policies compile equal (pydantic compares private attributes too).
        if not isinstance(other, CompiledPolicy):
            return NotImplemented
        return all(getattr(self, k) == getattr(other, k) for k in self.__slots__)

    __hash__ = None  # type: ignore[assignment]  # mutable-looking: not meant as a key


def compile_policy(p: Policy) -> CompiledPolicy:
    """Flatten a validated `Policy` into a `CompiledPolicy`."""
    c = CompiledPolicy()
    c.version = p.version
    c.base = p.currency.base
    c.rates = {**p.currency.rates, p.currency.base: 1.0}
    c.lateness_s = p.events.lateness_hours * HOUR
    c.dedup_max = p.events.dedup_max_ids
    c.window_days = p.rfm.window_days
    c.unit_cents = p.rfm.monetary_unit * 100
    c.r_max_days = tuple(p.rfm.recency_max_days)
    c.f_min = tuple(p.rfm.frequency_min_orders)
    c.m_min_cents = tuple(u * c.unit_cents for u in p.rfm.monetary_min_units)
    c.segments = tuple((s.name, s.r[0], s.r[1], s.f[0], s.f[1], s.m[0], s.m[1]) for s in p.segments)
    c.tier_names = tuple(r.name for r in p.tiers.ladder)
    c.tier_rank = {name: i for i, name in enumerate(c.tier_names)}
    c.tier_rules = tuple(
        (
            None if r.min_spend is None else _cents(r.min_spend),
            r.min_orders,
            None if r.min_single_order is None else _cents(r.min_single_order),
        )
        for r in p.tiers.ladder
    )
    c.grace_s = p.tiers.downgrade_grace_days * DAY
    c.warning_s = p.tiers.warning_days * DAY
    lc = p.lifecycle
    c.new_s, c.silent_s = lc.new_days * DAY, lc.silent_days * DAY
    c.churned_s, c.reactivated_s = lc.churned_days * DAY, lc.reactivated_days * DAY
    it = p.intent
    c.intent_days = it.window_days
    c.intent_half_days = it.window_days // 2
    c.ability_min_cents = _cents(it.ability_min_spend)
    c.satisfied_max_severity = (
        -1
        if it.satisfied_max_open_severity == "none"
        else SEVERITIES.index(it.satisfied_max_open_severity)
    )
    c.repeat_visit_days = it.repeat_visit_days
    c.min_calls = it.min_inbound_calls
    c.min_site_store = it.min_site_store_visits
    c.min_purchase_inquiries = it.min_purchase_inquiries
    c.full_price_max_discount = it.full_price_max_discount
    c.value_a_cents = _cents(p.value_class.a_min_spend)
    c.value_b_cents = _cents(p.value_class.b_min_spend)
    ch = p.churn
    c.band_names = tuple(b.name for b in ch.bands)
    c.band_rank = {name: i for i, name in enumerate(c.band_names)}
    c.band_mins = tuple(b.min_score for b in ch.bands)
    c.alert_band = c.band_names.index(ch.alert_band)
    c.cooldown_s = ch.cooldown_hours * HOUR
    c.w_recency, c.w_complaints = ch.weights.recency, ch.weights.complaints
    c.w_surveys, c.w_engagement = ch.weights.surveys, ch.weights.engagement
    c.half_days, c.prior_days = ch.recency.half_days, ch.recency.prior_days
    c.orders_exponent = ch.recency.orders_exponent
    c.complaint_days = ch.complaints.window_days
    c.complaint_half = ch.complaints.half_weight
    c.complaint_steepness = ch.complaints.steepness
    ow, rw = ch.complaints.open_weights, ch.complaints.recent_weights
    c.open_weights = (ow.low, ow.medium, ow.high)
    c.recent_weights = (rw.low, rw.medium, rw.high)
    c.survey_age_s = ch.surveys.max_age_days * DAY
    c.nps_detractor_max = ch.surveys.nps_detractor_max
    c.csat_low_max = ch.surveys.csat_low_max
    c.ces_high_min = ch.surveys.ces_high_min
    c.engagement_min_baseline = ch.engagement.min_baseline
    c.max_orders = p.limits.max_tracked_orders
    c.max_complaints = p.limits.max_complaints
    m, spec = p.model, ch.model
    c.model = m
    c.model_version = "" if m is None else m.model_version
    c.model_p_alive = spec is not None and spec.signal == "p_alive"
    c.w_model = 0.0 if spec is None else spec.weight
    bg = None if m is None else m.bgnbd
    c.model_r = 0.0 if bg is None else bg.r
    c.model_alpha = 0.0 if bg is None else bg.alpha
    c.model_a = 0.0 if bg is None else bg.a
    c.model_b = 0.0 if bg is None else bg.b
    return c
