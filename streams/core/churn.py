"""Churn risk at a time ``t``: the parts (silence since the last order, with a churn
model its signal too, complaints, surveys, falling engagement), the score, its band and
the reasons the outputs quote. The score is on the per-event path (`churn_core`,
`score_of`, `band_of`), so its arithmetic is written once, here, and shared by the
grade, the held alerts (`stepping`) and the band's due times (`churn_due`), which must
agree with it to the last bit.

Each part is a component in [0, 1] times its policy weight, and the parts combine as a
noisy-OR, ``1 - prod(1 - w_i c_i)``: one part alone gives at most its weight, every part
rising raises the score, and the components are continuous where the evidence is
(docs/grading.md, "Churn risk").
"""

from __future__ import annotations

import math
from typing import NamedTuple

from streams.core.churn_model import ModelClock, model_clock, model_probs, model_signal, model_sup
from streams.core.compiled import DAY, CompiledPolicy
from streams.core.folding import is_open
from streams.core.intent import poor_survey, survey_answers, survey_component
from streams.core.state import C_SEVERITY, I_TOTAL, CustomerState


class ChurnParts(NamedTuple):
    """Components in [0, 1] (before weights) and the facts the reasons quote."""

    silence: float
    complaints: float
    surveys: float
    engagement: float
    recency_days: int
    half_days: float
    open_weight: float
    recent_weight: float


def half_days(s: CustomerState, c: CompiledPolicy) -> float:
    """This customer's silence scale in days: the silence component is one half when the
    days since the last order plus `prior_days` reach it. ``(half_days + prior_days) *
    orders^orders_exponent``: a customer who bought often is given a longer silence.

    >>> from streams.core.policy import load_policy
    >>> from streams.core.state import new_state
    >>> c, s = load_policy().compiled, new_state("c-1")
    >>> s.live_orders = 1
    >>> half_days(s, c)
    120.0
    >>> s.live_orders = 32
    >>> half_days(s, c)
    240.0
    """
    n = s.live_orders
    scale = c.half_days + c.prior_days
    return scale if n <= 1 else scale * math.pow(n, c.orders_exponent)


def silence_component(days: int, half: float, c: CompiledPolicy) -> float:
    """``(days + prior) / (days + prior + half)``: rising with every day of silence and
    never reaching 1, so customers quiet for longer always rank higher (no plateau that
    ties them). `prior_days` gives a customer who just ordered the risk of one with few
    orders: at the same silence, fewer past orders rank higher.

    >>> from streams.core.policy import load_policy
    >>> c = load_policy().compiled
    >>> round(silence_component(0, 120.0, c), 4), silence_component(60, 120.0, c)
    (0.3333, 0.5)
    """
    prior = days + c.prior_days
    return prior / (prior + half)


def complaint_weights(s: CustomerState, t: int, c: CompiledPolicy) -> tuple[float, float]:
    open_w = recent_w = 0.0
    for r in s.complaints.values():
        if is_open(r):
            open_w += c.open_weights[r[C_SEVERITY]]
    lo = t // DAY - c.complaint_days
    for day, b in s.cdays.items():
        if day > lo:
            rw = c.recent_weights
            recent_w += b[0] * rw[0] + b[1] * rw[1] + b[2] * rw[2]
    return open_w, recent_w


def complaint_component(weight: float, c: CompiledPolicy) -> float:
    """``w^s / (w^s + h^s)`` of the summed severity weights `w` (h: `half_weight`, s:
    `steepness`): one mild complaint counts little, many severe ones nearly fully, and
    every further complaint raises it.

    >>> from streams.core.policy import load_policy
    >>> c = load_policy().compiled
    >>> complaint_component(0.0, c), round(complaint_component(1.2, c), 4)
    (0.0, 0.0033)
    >>> round(complaint_component(6.0, c), 4)
    0.6746
    """
    if weight <= 0.0:
        return 0.0
    r = weight / c.complaint_half
    if r > 1e6:
        return 1.0  # (what the formula rounds to, without pow's overflow)
    x = math.pow(r, c.complaint_steepness)
    return x / (1.0 + x)


def churn_parts(s: CustomerState, t: int, c: CompiledPolicy) -> ChurnParts:
    if s.last_order is None:
        sil, days, half = 0.0, 0, 0.0
    else:
        days = (t - s.last_order) // DAY
        half = half_days(s, c)
        sil = silence_component(days, half, c)
    if s.complaints or s.cdays:
        open_w, recent_w = complaint_weights(s, t, c)
        comp = complaint_component(open_w + recent_w, c)
    else:
        open_w = recent_w = comp = 0.0
    surv = survey_component(s, t, c)
    eng = engagement_component(s, t, c)
    return ChurnParts(sil, comp, surv, eng, days, half, open_w, recent_w)


def round4(x: float) -> float:
    """``round(x, 4)`` bit for bit, without its decimal conversion (round with digits
    formats the float as a string, an snprintf and two dtoa calls: a tenth of the replay's
    instructions once the core is compiled).

    For 0 <= x <= 1, ``y = x * 10_000`` is within 1e-12 of the exact product, so unless
    the exact product is within that of a tie (fraction .5) the nearest integer ``n`` of
    ``y`` is the correctly rounded one, and ``n / 10_000`` is the double nearest to the
    decimal n·10⁻⁴, which is what round's string conversion gives. Zeros are returned as
    they are (as round does, sign included); near-ties (fraction within 1e-7 of .5),
    negatives, larger and non-finite values go to round itself. tests/core/test_round4.py
    compares the two on ties, edges and random values.

    >>> round4(0.123449999), round4(1.0), round4(0.00005), round4(-1e-17)
    (0.1234, 1.0, 0.0001, -0.0)
    """
    if 0.0 < x <= 1.0:
        y = x * 10_000.0
        n = math.floor(y)
        frac = y - n
        if frac < 0.4999999:
            return n / 10_000.0
        if frac > 0.5000001:
            return (n + 1) / 10_000.0
    elif x == 0.0:
        return x  # what round gives, with the sign of zero
    return round(x, 4)


def score_of(time: float, others: float, c: CompiledPolicy) -> float:
    """Rounded to 4 places: the band is decided on the score the outputs show.

    `time`: the weighted time part (`time_part`); `others`: the other weighted parts
    already combined (`add_part`). The parts combine as a noisy-OR, 1 - (1 - time)(1 -
    others): each part alone gives at most its weight, and any part rising raises the score.
    """
    return round4(1.0 - (1.0 - time) * (1.0 - others))


def add_part(others: float, weighted: float, c: CompiledPolicy) -> float:
    """`others` with one more weighted part (the noisy-OR)."""
    return 1.0 - (1.0 - others) * (1.0 - weighted)


def add_engagement(base: float, eng: float, c: CompiledPolicy) -> float:
    """The others with the engagement component `eng` in [0, 1] (exactly what
    `churn_core` computes, so due times and grades agree to the last bit). The part is
    ``w_engagement * eng²``: a slight fall counts little, a collapse fully."""
    if eng <= 0:
        return base
    return add_part(base, c.w_engagement * (eng * eng), c)


def band_of(score: float, c: CompiledPolicy) -> int:
    mins = c.band_mins
    i = len(mins) - 1
    while score < mins[i]:
        i -= 1
    return i


class Silence:
    """What the time part needs besides ``t``: the last order, this customer's half days
    and, under a policy with a churn model, the customer's BG/NBD clock. A plain class
    that mypyc compiles (the due-time searches evaluate it many times)."""

    last: int
    half: float
    model: ModelClock | None

    def __init__(self, last: int, half: float, model: ModelClock | None) -> None:
        self.last = last
        self.half = half
        self.model = model


def silence_of(s: CustomerState, c: CompiledPolicy) -> Silence | None:
    """None for a customer with no live order: no time part."""
    last = s.last_order
    if last is None:
        return None
    return Silence(last, half_days(s, c), model_clock(s, c))


def time_part(k: Silence, t: int, c: CompiledPolicy) -> float:
    """The weighted time part at ``t``: ``w_recency`` times the silence component, and
    with a churn model its weighted signal joined in the noisy-OR. Without an order it
    never falls as ``t`` grows (both rise), which the due-time searches rely on."""
    prior = (t - k.last) // DAY + c.prior_days
    p = c.w_recency * (prior / (prior + k.half))
    m = k.model
    if m is not None:
        p = 1.0 - (1.0 - p) * (1.0 - c.w_model * model_signal(m, t, c))
    return p


def time_sup(k: Silence, c: CompiledPolicy) -> float:
    """What the time part tends to as ``t`` grows without an order (never reached)."""
    p = c.w_recency
    m = k.model
    if m is not None:
        p = 1.0 - (1.0 - p) * (1.0 - c.w_model * model_sup(m, c))
    return p


class ChurnCore:
    """The hot-path churn facts: the weighted time part, the other parts weighted and
    combined (same arithmetic as the reasons' `churn_parts`), whole days since the last
    order, and the customer's half days.

    A plain class, not a NamedTuple: mypyc compiles it to a native class (a NamedTuple is
    built through its interpreted ``__new__`` and read through attribute lookups), and
    nothing uses it as a tuple.
    """

    recency: float
    others: float
    recency_days: int
    half_days: float
    # `others` without the engagement term, and that term's component in [0, 1].
    base: float
    engagement: float

    def __init__(
        self,
        recency: float,
        others: float,
        recency_days: int,
        half_days: float,
        base: float,
        engagement: float,
    ) -> None:
        self.recency = recency
        self.others = others
        self.recency_days = recency_days
        self.half_days = half_days
        self.base = base
        self.engagement = engagement

    def __repr__(self) -> str:
        return (
            f"ChurnCore(recency={self.recency!r}, others={self.others!r}, "
            f"recency_days={self.recency_days!r}, half_days={self.half_days!r}, "
            f"base={self.base!r}, engagement={self.engagement!r})"
        )


def engagement_counts(s: CustomerState, t: int, c: CompiledPolicy) -> tuple[int, int]:
    """Interactions in the recent and the earlier half of the intent window at ``t``."""
    today = t // DAY
    mid = today - c.intent_half_days
    lo = today - c.intent_days
    recent = earlier = 0
    for day, b in s.idays.items():
        if day > mid:
            recent += b[I_TOTAL]
        elif day > lo:
            earlier += b[I_TOTAL]
    return recent, earlier


def engagement_component(s: CustomerState, t: int, c: CompiledPolicy) -> float:
    """1 - recent/earlier when engagement fell from a baseline, else 0."""
    if not s.idays:
        return 0.0
    recent, earlier = engagement_counts(s, t, c)
    if earlier >= c.engagement_min_baseline and recent < earlier:
        return 1.0 - recent / earlier
    return 0.0


def with_engagement(k: ChurnCore, s: CustomerState, t: int, c: CompiledPolicy) -> ChurnCore:
    """Parts computed without engagement (``churn_core(..., engagement=False)``) completed
    with it: equal to ``churn_core(s, t, c)``, without recomputing the other parts."""
    eng = engagement_component(s, t, c)
    return ChurnCore(
        k.recency, add_engagement(k.base, eng, c), k.recency_days, k.half_days, k.base, eng
    )


def churn_core(s: CustomerState, t: int, c: CompiledPolicy, engagement: bool = True) -> ChurnCore:
    """Without `engagement`, the engagement term is left out (0): callers that know it
    cannot move the band skip the scan of the interaction days."""
    last = s.last_order
    if last is None:
        tp, days, half = 0.0, 0, 0.0
    else:
        days = (t - last) // DAY
        n = s.live_orders
        half = c.half_days + c.prior_days
        if n > 1:
            half *= math.pow(n, c.orders_exponent)
        prior = days + c.prior_days
        tp = c.w_recency * (prior / (prior + half))
        if c.model is not None:
            k = model_clock(s, c)
            if k is not None:
                tp = 1.0 - (1.0 - tp) * (1.0 - c.w_model * model_signal(k, t, c))
    others = 0.0
    if s.complaints or s.cdays:
        open_w, recent_w = complaint_weights(s, t, c)
        others = c.w_complaints * complaint_component(open_w + recent_w, c)
    if s.survey is not None:
        sv = survey_component(s, t, c)
        if sv > 0:
            others = 1.0 - (1.0 - others) * (1.0 - c.w_surveys * sv)
    base = others
    eng = engagement_component(s, t, c) if engagement else 0.0
    return ChurnCore(tp, add_engagement(base, eng, c), days, half, base, eng)


def churn_score(s: CustomerState, t: int, c: CompiledPolicy) -> tuple[float, int]:
    """(score, band index) — the hot-path form, without reasons."""
    k = churn_core(s, t, c)
    score = score_of(k.recency, k.others, c)
    return score, band_of(score, c)


def churn_reasons(s: CustomerState, t: int, c: CompiledPolicy) -> list[dict[str, str]]:
    """Each non-zero part as {code, message}, largest weighted part first (the noisy-OR
    ranks parts as their weighted values do; ties keep a fixed order)."""
    p = churn_parts(s, t, c)
    found: list[tuple[float, int, str, str]] = []
    if p.silence > 0:
        n = s.live_orders
        days = p.recency_days
        ago = "today" if days == 0 else f"{days} day{'' if days == 1 else 's'} ago"
        orders = "1 order" if n == 1 else f"{n} orders"
        found.append((c.w_recency * p.silence, 0, "recency", f"Last order {ago}, {orders} in all"))
    if c.model is not None:
        reason = model_reason(s, t, c)
        if reason is not None:
            found.append(reason)
    if p.complaints > 0:
        w = c.w_complaints * p.complaints
        open_n = sum(1 for r in s.complaints.values() if is_open(r))
        if p.open_weight > 0:
            worst = max(r[C_SEVERITY] for r in s.complaints.values() if is_open(r))
            sev = ("low", "medium", "high")[worst]
            found.append(
                (
                    w,
                    2,
                    "open_complaints",
                    f"{open_n} open complaint(s), the worst of {sev} severity",
                )
            )
        if p.recent_weight > 0:
            lo = t // DAY - c.complaint_days
            n_recent = sum(sum(b) for d, b in s.cdays.items() if d > lo)
            found.append(
                (
                    w,
                    3,
                    "recent_complaints",
                    f"{n_recent} complaint(s) opened in the last {c.complaint_days} days",
                )
            )
    if p.surveys > 0 and s.survey is not None:
        w = c.w_surveys * p.surveys
        nps, csat, ces = survey_answers(s)
        detractor, low_csat, effort = poor_survey(s, t, c)
        if detractor:
            found.append((w, 4, "nps_detractor", f"Latest NPS answer is {nps} (a detractor)"))
        if low_csat:
            found.append((w, 5, "low_csat", f"Latest satisfaction (CSAT) answer is {csat} of 5"))
        if effort:
            found.append((w, 6, "high_effort", f"Latest effort (CES) answer is {ces} of 7"))
    if p.engagement > 0:
        recent, earlier = engagement_counts(s, t, c)
        found.append(
            (
                c.w_engagement * p.engagement * p.engagement,
                7,
                "falling_engagement",
                f"{recent} interactions in the last {c.intent_half_days} days against "
                f"{earlier} in the {c.intent_days - c.intent_half_days} days before",
            )
        )
    found.sort(key=lambda x: (-x[0], x[1]))
    return [{"code": code, "message": msg} for _, _, code, msg in found]


def model_reason(s: CustomerState, t: int, c: CompiledPolicy) -> tuple[float, int, str, str] | None:
    """(weighted part, rank, code, message) of the model's part, None when it is 0."""
    k = model_clock(s, c)
    if k is None or s.last_order is None:
        return None
    alive, quiet = model_probs(k, t, c)
    m = 1.0 - alive if c.model_p_alive else quiet
    if m <= 0 or c.w_model <= 0:
        return None
    n = s.live_orders
    days = (t - s.last_order) // DAY
    ago = "today" if days == 0 else f"{days} day{'' if days == 1 else 's'} ago"
    last = "the last one today" if days == 0 else f"the last {ago}"
    history = f"1 order, {ago}" if n == 1 else f"{n} orders, {last}"
    p_quiet = f"P(no order in the next 90 days) {quiet:.2f}"
    p_alive = f"P(alive) {alive:.2f}"
    if c.model_p_alive:
        code, msg = "model_not_alive", f"{p_alive}: {history}; {p_quiet}"
    else:
        code, msg = "model_quiet", f"{p_quiet}: {history}; {p_alive}"
    return c.w_model * m, 1, code, f"{msg} (model {c.model_version})"
