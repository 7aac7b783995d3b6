"""Churn risk at a time ``t``: the components (recency against the customer's cadence
or the churn model's signal, complaints, surveys, falling engagement), the score, its
band and the reasons the outputs quote. The score is on the per-event path
(`churn_core`, `score_of`, `band_of`), so its arithmetic is written once, here, and
shared by the grade, the held alerts (`stepping`) and the band's due times
(`churn_due`), which must agree with it to the last bit.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from streams.core.churn_model import model_clock, model_probs, model_signal
from streams.core.compiled import DAY, CompiledPolicy
from streams.core.folding import is_open
from streams.core.intent import poor_survey, survey_is_poor
from streams.core.state import C_SEVERITY, I_TOTAL, CustomerState


class ChurnParts(NamedTuple):
    """Components in [0, 1] (before weights) and the facts the reasons quote."""

    recency: float
    complaints: float
    surveys: float
    engagement: float
    recency_days: int
    cadence_days: float
    open_weight: float
    recent_weight: float


def cadence_days(s: CustomerState, c: CompiledPolicy) -> float:
    """Mean gap between this customer's orders in days (policy default with one order)."""
    if s.live_orders >= 2 and s.first_order is not None and s.last_order is not None:
        gap = (s.last_order - s.first_order) / DAY / (s.live_orders - 1)
        return max(c.cadence_min_days, gap)
    return c.cadence_default_days


def recency_component(days: int, cadence: float, c: CompiledPolicy) -> float:
    ratio = days / cadence
    x = (ratio - c.overdue_start) / (c.overdue_full - c.overdue_start)
    return 0.0 if x <= 0 else 1.0 if x >= 1 else x


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


def churn_parts(s: CustomerState, t: int, c: CompiledPolicy) -> ChurnParts:
    if s.last_order is None:
        rec, days, cad = 0.0, 0, 0.0
    else:
        days = (t - s.last_order) // DAY
        cad = cadence_days(s, c)
        rec = recency_component(days, cad, c)
    if s.complaints or s.cdays:
        open_w, recent_w = complaint_weights(s, t, c)
        comp = min(1.0, open_w + recent_w)
    else:
        open_w = recent_w = comp = 0.0
    surv = 1.0 if survey_is_poor(s, t, c) else 0.0
    eng = engagement_component(s, t, c)
    return ChurnParts(rec, comp, surv, eng, days, cad, open_w, recent_w)


def others_weighted(p: ChurnParts, c: CompiledPolicy) -> float:
    return c.w_complaints * p.complaints + c.w_surveys * p.surveys + c.w_engagement * p.engagement


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


def score_of(recency: float, others: float, c: CompiledPolicy) -> float:
    """Rounded to 4 places: the band is decided on the score the outputs show.

    `recency`: the time part in [0, 1] (the overdue component, or with a churn model the
    model's signal); `others`: the other parts already combined (`add_part`). Without a
    model, a weighted sum; with one, a noisy-OR: 1 - (1 - w_model m)(1 - others).
    """
    if c.model is None:
        raw = c.w_recency * recency + others
        return round4(raw if raw < 1.0 else 1.0)  # min(1.0, raw) without a call
    return round4(1.0 - (1.0 - c.w_model * recency) * (1.0 - others))


def add_part(others: float, weighted: float, c: CompiledPolicy) -> float:
    """`others` with one more weighted part: a sum, or with a model a noisy-OR."""
    if c.model is None:
        return others + weighted
    return 1.0 - (1.0 - others) * (1.0 - weighted)


def add_engagement(base: float, eng: float, c: CompiledPolicy) -> float:
    """The others with the engagement component `eng` in [0, 1] (exactly what
    `churn_core` computes, so due times and grades agree to the last bit)."""
    if eng <= 0:
        return base
    return add_part(base, c.w_engagement * eng, c)


def band_of(score: float, c: CompiledPolicy) -> int:
    mins = c.band_mins
    i = len(mins) - 1
    while score < mins[i]:
        i -= 1
    return i


class ChurnCore:
    """The hot-path churn facts: recency component, the other components weighted and
    summed (same arithmetic as `others_weighted`), whole days since the last order, and
    the cadence in days.

    A plain class, not a NamedTuple: mypyc compiles it to a native class (a NamedTuple is
    built through its interpreted ``__new__`` and read through attribute lookups), and
    nothing uses it as a tuple.
    """

    recency: float
    others: float
    recency_days: int
    cadence_days: float
    # `others` without the engagement term, and that term's component in [0, 1].
    base: float
    engagement: float

    def __init__(
        self,
        recency: float,
        others: float,
        recency_days: int,
        cadence_days: float,
        base: float,
        engagement: float,
    ) -> None:
        self.recency = recency
        self.others = others
        self.recency_days = recency_days
        self.cadence_days = cadence_days
        self.base = base
        self.engagement = engagement

    def __repr__(self) -> str:
        return (
            f"ChurnCore(recency={self.recency!r}, others={self.others!r}, "
            f"recency_days={self.recency_days!r}, cadence_days={self.cadence_days!r}, "
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
        k.recency, add_engagement(k.base, eng, c), k.recency_days, k.cadence_days, k.base, eng
    )


def churn_core(s: CustomerState, t: int, c: CompiledPolicy, engagement: bool = True) -> ChurnCore:
    """Without `engagement`, the engagement term is left out (0): callers that know it
    cannot move the band skip the scan of the interaction days.

    With a churn model, `recency` is the model's signal and `others` the noisy-OR of the
    other parts (`cadence_days` is then 0: unused)."""
    if c.model is not None:
        return _churn_core_model(s, t, c, engagement)
    last = s.last_order
    if last is None:
        rec, days, cad = 0.0, 0, 0.0
    else:
        days = (t - last) // DAY
        n, first = s.live_orders, s.first_order
        if n >= 2 and first is not None:
            cad = (last - first) / DAY / (n - 1)
            if cad < c.cadence_min_days:
                cad = c.cadence_min_days
        else:
            cad = c.cadence_default_days
        x = (days / cad - c.overdue_start) / (c.overdue_full - c.overdue_start)
        rec = 0.0 if x <= 0 else 1.0 if x >= 1 else x
    others = 0.0
    if s.complaints or s.cdays:
        open_w, recent_w = complaint_weights(s, t, c)
        others += c.w_complaints * min(1.0, open_w + recent_w)
    if survey_is_poor(s, t, c):
        others += c.w_surveys * 1.0
    base = others
    eng = engagement_component(s, t, c) if engagement else 0.0
    if eng > 0:
        others += c.w_engagement * eng
    return ChurnCore(rec, others, days, cad, base, eng)


def _churn_core_model(s: CustomerState, t: int, c: CompiledPolicy, engagement: bool) -> ChurnCore:
    k = model_clock(s, c)
    m = 0.0 if k is None else model_signal(k, t, c)
    last = s.last_order
    days = 0 if last is None else (t - last) // DAY
    others = 0.0
    if s.complaints or s.cdays:
        open_w, recent_w = complaint_weights(s, t, c)
        others = c.w_complaints * min(1.0, open_w + recent_w)
    if survey_is_poor(s, t, c):
        others = 1.0 - (1.0 - others) * (1.0 - c.w_surveys)
    base = others
    eng = engagement_component(s, t, c) if engagement else 0.0
    return ChurnCore(m, add_engagement(base, eng, c), days, 0.0, base, eng)


def churn_score(s: CustomerState, t: int, c: CompiledPolicy) -> tuple[float, int]:
    """(score, band index) — the hot-path form, without reasons."""
    k = churn_core(s, t, c)
    score = score_of(k.recency, k.others, c)
    return score, band_of(score, c)


def churn_reasons(s: CustomerState, t: int, c: CompiledPolicy) -> list[dict[str, str]]:
    """Each non-zero component as {code, message}, largest weighted contribution first."""
    p = churn_parts(s, t, c)
    found: list[tuple[float, int, str, str]] = []
    if c.model is not None:
        # Ranked by the share of the log-survival, -ln(1 - w c): the same order as w c.
        reason = model_reason(s, t, c)
        if reason is not None:
            found.append(reason)
    elif p.recency > 0:
        found.append(
            (
                c.w_recency * p.recency,
                0,
                "overdue",
                f"No order for {p.recency_days} days, {p.recency_days / p.cadence_days:.1f}x "
                f"this customer's usual gap of {p.cadence_days:.0f} days",
            )
        )
    if p.complaints > 0:
        w = c.w_complaints * p.complaints
        open_n = sum(1 for r in s.complaints.values() if is_open(r))
        if p.open_weight > 0:
            worst = max(r[C_SEVERITY] for r in s.complaints.values() if is_open(r))
            sev = ("low", "medium", "high")[worst]
            found.append(
                (
                    w,
                    1,
                    "open_complaints",
                    f"{open_n} open complaint(s), the worst of {sev} severity",
                )
            )
        if p.recent_weight > 0:
            lo = t // DAY - c.complaint_days
            n = sum(sum(b) for d, b in s.cdays.items() if d > lo)
            found.append(
                (
                    w,
                    2,
                    "recent_complaints",
                    f"{n} complaint(s) opened in the last {c.complaint_days} days",
                )
            )
    if p.surveys > 0 and s.survey is not None:
        w = c.w_surveys * p.surveys
        detractor, low_csat, effort = poor_survey(s, t, c)
        _, nps, csat, ces = s.survey
        if detractor:
            found.append((w, 3, "nps_detractor", f"Latest NPS answer is {nps} (a detractor)"))
        if low_csat:
            found.append((w, 4, "low_csat", f"Latest satisfaction (CSAT) answer is {csat} of 5"))
        if effort:
            found.append((w, 5, "high_effort", f"Latest effort (CES) answer is {ces} of 7"))
    if p.engagement > 0:
        recent, earlier = engagement_counts(s, t, c)
        found.append(
            (
                c.w_engagement * p.engagement,
                6,
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
    return c.w_model * m, 0, code, f"{msg} (model {c.model_version})"
