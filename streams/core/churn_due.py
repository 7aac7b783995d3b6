"""When the churn band can next change by time alone: the instant recency (or the churn
model's signal) and falling engagement lift the score across a band floor, the other
parts held. Kept apart from the simple thresholds in `due` (which takes the earliest of
both) because these are searches, a day walk on the overdue ramp, a bisection on the
model's signal and a walk over the intent window's midnights, each testing the very
score the grade uses (`churn.score_of`, rounding included).
"""

from __future__ import annotations

import math
from typing import Final

from streams.core.churn import (
    ChurnCore,
    add_engagement,
    band_of,
    churn_core,
    recency_component,
    score_of,
)
from streams.core.churn_model import model_clock, model_signal, model_sup
from streams.core.compiled import DAY, CompiledPolicy
from streams.core.state import I_TOTAL, CustomerState


def engagement_sensitive(k: ChurnCore, c: CompiledPolicy) -> bool:
    """Could the engagement term alone, whatever its value, move the churn band now?

    When it cannot, the days sliding through the intent window's halves need no wake-up:
    `churn_due` then assumes the worst engagement, so the earliest moment it could matter
    is still a due time.
    """
    if c.w_engagement <= 0:
        return False
    low = score_of(k.recency, k.base, c)
    high = score_of(k.recency, add_engagement(k.base, 1.0, c), c)
    # The score only rises with engagement: the band moves iff a band starts in (low, high].
    for floor in c.band_mins:  # noqa: SIM110 (a generator costs more on this hot path)
        if low < floor <= high:
            return True
    return False


def _recency_target(band: int, others: float, c: CompiledPolicy) -> float | None:
    """The score that starts the band above `band`, if recency alone can reach it with the
    other components held at `others`; None when there is no higher band or it is out of
    reach."""
    mins = c.band_mins
    if band + 1 >= len(mins):
        return None
    target = mins[band + 1]
    return None if score_of(1.0, others, c) < target else target


def _recency_guess(
    cad: float, target: float, others: float, now_days: int, c: CompiledPolicy
) -> int:
    """The day (since the last order) at which recency should reach `target`, by inverting
    the linear overdue ramp; float rounding may put it a day off either way."""
    need = (target - others) / c.w_recency
    guess = cad * (c.overdue_start + need * (c.overdue_full - c.overdue_start))
    return max(now_days + 1, math.ceil(guess))


def _recency_cross(
    last: int, cad: float, others: float, band: int, t_from: int, c: CompiledPolicy
) -> int | None:
    """First instant after ``t_from`` at which recency alone lifts the score above `band`.

    `others`: the other components, weighted and summed, held constant. None: never.
    """
    target = _recency_target(band, others, c)
    if target is None:
        return None
    now_days = (t_from - last) // DAY
    d = _recency_guess(cad, target, others, now_days, c)
    # Float rounding may put the guess a day off either way: settle on the exact first day.
    while d - 1 > now_days and score_of(recency_component(d - 1, cad, c), others, c) >= target:
        d -= 1
    while score_of(recency_component(d, cad, c), others, c) < target:
        d += 1
    return last + d * DAY


# How far ahead the model's crossing is searched: beyond it, "never".
_MODEL_HORIZON: Final = 36_525 * DAY


def _model_cross(
    s: CustomerState,
    others: float,
    band: int,
    t_from: int,
    c: CompiledPolicy,
    hi: int | None = None,
    before: int | None = None,
) -> int | None:
    """First instant (whole second) after ``t_from`` at which the churn model's signal alone
    lifts the score above `band`, the other parts held at `others`. None: never (or, with
    `before`, not before it).

    Without an order the signal only rises with time, so the band test is monotone in t:
    a bisection on whole seconds, with the very predicate the grade uses (rounding
    included), gives the exact instant. `hi`: an instant already known to be above.
    """
    mins = c.band_mins
    if band + 1 >= len(mins) or c.w_model <= 0:
        return None
    k = model_clock(s, c)
    if k is None:
        return None
    target = mins[band + 1]
    if score_of(model_sup(k, c), others, c) < target:
        return None
    lo = t_from
    if score_of(model_signal(k, lo, c), others, c) >= target:
        return lo + 1  # (others held at a worst case: a lower bound, woken to recompute)
    if hi is None:
        if before is not None:
            if before <= lo or score_of(model_signal(k, before, c), others, c) < target:
                return None
            hi = before
        else:
            step = DAY
            hi = lo + step
            while score_of(model_signal(k, hi, c), others, c) < target:
                if step > _MODEL_HORIZON:
                    return None
                lo = hi
                step *= 2
                hi = t_from + step
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if score_of(model_signal(k, mid, c), others, c) >= target:
            hi = mid
        else:
            lo = mid
    return hi


def churn_due(
    s: CustomerState,
    c: CompiledPolicy,
    p: ChurnCore | None = None,
    before: int | None = None,
    worst_engagement: bool = False,
) -> int | None:
    """When the time since the last order alone lifts the churn score into the next band.

    The other components are held at their current values (their own changes are due
    times of their own), or with `worst_engagement` the engagement term at its maximum
    (used when engagement cannot move the band now: a lower bound of when it could).
    `p`: parts already computed at ``s.as_of``. With `before` (a due already known),
    returns None as soon as the answer is sure to be no earlier than it.
    """
    last = s.last_order
    if c.model is not None:
        if last is None:
            return None
        if p is None:
            p = churn_core(s, s.as_of, c)
        band = band_of(score_of(p.recency, p.others, c), c)
        others = add_engagement(p.base, 1.0, c) if worst_engagement else p.others
        return _model_cross(s, others, band, s.as_of, c, before=before)
    if last is None or c.w_recency <= 0:
        return None
    if p is None:
        p = churn_core(s, s.as_of, c)
    band = band_of(score_of(p.recency, p.others, c), c)
    others = p.base + c.w_engagement if worst_engagement else p.others
    target = _recency_target(band, others, c)
    if target is None:
        return None
    if before is not None:
        # The 4-place rounding moves the crossing by well under a day for any sane
        # cadence; two days of margin keep the shortcut a true lower bound.
        d = _recency_guess(p.cadence_days, target, others, p.recency_days, c)
        if last + (d - 2) * DAY >= before:
            return None
    return _recency_cross(last, p.cadence_days, others, band, s.as_of, c)


class _Midnights:
    """(day, change of recent, change of earlier) at each midnight, in time order, at which
    an interaction day of the window (`days`, ascending) moves to the earlier half (days
    after `mid`, `half` days on) or leaves the window (`width` days on).

    Lazy, as a generator would be (the walk mostly stops early), but a plain class that
    mypyc compiles: `advance()` moves to the next midnight (False after the last) and
    leaves it in `day`, `dr`, `de` (a compiled generator cost a resume and a tuple each).
    """

    def __init__(self, days: list[int], totals: list[int], mid: int, half: int, width: int) -> None:
        # `days` ascending with their interaction `totals`; the recent half is the suffix
        # from index j (days after `mid`), which moves to the earlier half in day order.
        self.days = days
        self.totals = totals
        j = len(days)
        while j > 0 and days[j - 1] > mid:
            j -= 1
        self.half = half
        self.width = width
        self.i = 0
        self.j = j
        self.day = 0
        self.dr = 0
        self.de = 0

    def advance(self) -> bool:
        days, totals = self.days, self.totals
        i, j, n_days = self.i, self.j, len(days)
        if i >= n_days:  # a day leaves after it moved: the leaving ends the walk
            return False
        half, width = self.half, self.width
        day = days[i] + width
        if j < n_days and days[j] + half < day:
            day = days[j] + half
        dr = de = 0
        while j < n_days and days[j] + half == day:
            n = totals[j]
            dr -= n
            de += n
            j += 1
        while i < n_days and days[i] + width == day:
            de -= totals[i]
            i += 1
        self.i, self.j = i, j
        self.day, self.dr, self.de = day, dr, de
        return True


def band_due(
    s: CustomerState, c: CompiledPolicy, p: ChurnCore, before: int | None = None
) -> int | None:
    """The first instant after ``s.as_of`` at which the churn band changes by time alone,
    from recency and engagement together (complaint and survey expiries are due times of
    their own, so the other components are held).

    `p`: the exact parts at ``s.as_of`` (engagement included). Engagement is constant
    between the midnights at which a day's interactions change half or leave the
    window; between them only recency moves, and only upwards. So: walk those midnights
    in order, checking the recency crossing inside each stretch and the band at each
    midnight. With `before`, gives up (None) once the answer cannot be earlier.
    """
    t0 = s.as_of
    band = band_of(score_of(p.recency, p.others, c), c)
    last = s.last_order
    use_recency = last is not None and c.w_recency > 0
    today = t0 // DAY
    half, width = c.intent_half_days, c.intent_days
    mid, lo = today - half, today - width
    # The window's days, ascending (`idays` is kept in day order), with their totals.
    days: list[int] = []
    totals: list[int] = []
    recent = earlier = 0
    for d, b in s.idays.items():
        if d > lo:
            n = b[I_TOTAL]
            days.append(d)
            totals.append(n)
            if d > mid:
                recent += n
            else:
                earlier += n
    # Lazily: the walk mostly stops at `before`, long before the last midnight.
    steps = _Midnights(days, totals, mid, half, width)
    base, w_e, need_base = p.base, c.w_engagement, c.engagement_min_baseline
    others = p.others
    mins = c.band_mins
    target = mins[band + 1] if band + 1 < len(mins) else 2.0
    if c.model is not None:
        return _band_walk_model(s, c, p, band, target, steps, recent, earlier, before)
    t_from = t0
    cad = p.cadence_days
    # The band holds while floor <= score < target: band_of's test, without the ladder walk.
    floor = mins[band]
    while steps.advance():
        day, dr, de = steps.day, steps.dr, steps.de
        m = day * DAY
        if use_recency:
            assert last is not None
            # Recency only rises inside the stretch: a crossing before m shows at its end.
            end = recency_component((m - 1 - last) // DAY, cad, c)
            if score_of(end, others, c) >= target:
                return _recency_cross(last, cad, others, band, t_from, c)
        if before is not None and m >= before:
            return None
        recent += dr
        earlier += de
        eng = 1.0 - recent / earlier if earlier >= need_base and recent < earlier else 0.0
        others = base + w_e * eng if eng > 0 else base
        if use_recency:
            assert last is not None
            rec = recency_component((m - last) // DAY, cad, c)
        else:
            rec = 0.0
        if not floor <= score_of(rec, others, c) < target:
            return m
        t_from = m
    if not use_recency:
        return None
    assert last is not None
    return _recency_cross(last, cad, others, band, t_from, c)


def _band_walk_model(
    s: CustomerState,
    c: CompiledPolicy,
    p: ChurnCore,
    band: int,
    target: float,
    steps: _Midnights,
    recent: int,
    earlier: int,
    before: int | None,
) -> int | None:
    """`band_due`'s walk under a churn model: the model's signal in place of recency.

    A midnight at which the engagement part stays what it was is not a stretch end (the
    signal is continuous, so the stretches merge): only the midnights that change the
    others are checked, which keeps the model's transcendental calls few."""
    k = model_clock(s, c)
    use_model = k is not None and c.w_model > 0
    base, others, need_base = p.base, p.others, c.engagement_min_baseline
    t_from = s.as_of
    while steps.advance():
        day, dr, de = steps.day, steps.dr, steps.de
        m = day * DAY
        recent += dr
        earlier += de
        eng = 1.0 - recent / earlier if earlier >= need_base and recent < earlier else 0.0
        now_others = add_engagement(base, eng, c)
        last_one = before is not None and m >= before
        if now_others == others and not last_one:
            continue
        # The signal only rises inside the stretch: a crossing before m shows at its end.
        if use_model:
            assert k is not None
            if score_of(model_signal(k, m - 1, c), others, c) >= target:
                return _model_cross(s, others, band, t_from, c, hi=m - 1)
        if last_one:
            return None
        others = now_others
        rec = 0.0 if k is None else model_signal(k, m, c)
        if band_of(score_of(rec, others, c), c) != band:
            return m
        t_from = m
    if not use_model:
        return None
    return _model_cross(s, others, band, t_from, c, before=before)
