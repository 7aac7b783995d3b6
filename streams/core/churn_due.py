"""When the churn band can next change by time alone: the instant the time part (silence,
and a churn model's signal) and falling engagement lift the score across a band floor,
the other parts held. Kept apart from the simple thresholds in `due` (which takes the
earliest of both) because these are searches, on whole days for silence, on whole
seconds with a model, and a walk over the intent window's midnights, each testing the
very score the grade uses (`churn.score_of`, rounding included).
"""

from __future__ import annotations

import math
from typing import Final

from streams.core.churn import (
    ChurnCore,
    Silence,
    add_engagement,
    band_of,
    churn_core,
    score_of,
    silence_of,
    time_part,
    time_sup,
)
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


# How far ahead a crossing is searched: beyond it, "never".
_HORIZON: Final = 36_525 * DAY
_HORIZON_DAYS: Final = 36_525


def _target(band: int, others: float, k: Silence, c: CompiledPolicy) -> float | None:
    """The score that starts the band above `band`, if the time part alone can reach it
    with the other parts held at `others`; None when there is no higher band or it is
    out of reach."""
    mins = c.band_mins
    if band + 1 >= len(mins):
        return None
    target = mins[band + 1]
    return None if score_of(time_sup(k, c), others, c) < target else target


def _day_guess(half: float, target: float, others: float, c: CompiledPolicy) -> int:
    """The day (since the last order) at which silence alone should lift the score to
    `target`, by inverting ``w (d + a) / (d + a + half)``; the 4-place rounding may put
    it off."""
    need = (1.0 - (1.0 - target) / (1.0 - others)) / c.w_recency
    if need >= 1.0:
        return _HORIZON_DAYS
    if need <= 0.0:
        return 0
    return max(0, min(_HORIZON_DAYS, math.ceil(half * need / (1.0 - need) - c.prior_days)))


def _silence_cross(
    k: Silence, others: float, target: float, t_from: int, c: CompiledPolicy
) -> int | None:
    """First instant after ``t_from`` at which the time part (no model: it moves at whole
    days after the last order) lifts the score to `target`, the others held. None: not
    within the horizon.

    From the inverted formula's guess, a step either way settles it; when the rounding
    makes the guess far off (days of tiny steps late on the curve), a doubling bracket
    and a bisection on whole days find the exact first day.
    """
    last = k.last
    now_days = (t_from - last) // DAY  # the score at now_days is below target

    def reaches(d: int) -> bool:
        return score_of(time_part(k, last + d * DAY, c), others, c) >= target

    d = max(now_days + 1, _day_guess(k.half, target, others, c))
    lo = now_days
    if reaches(d):
        if d - 1 <= now_days or not reaches(d - 1):
            return last + d * DAY
        hi = d - 1
    else:
        if reaches(d + 1):
            return last + (d + 1) * DAY
        lo, step = d + 1, 2
        hi = lo + step
        while not reaches(hi):
            if hi >= _HORIZON_DAYS:
                return None
            lo, step = hi, step * 2
            hi = min(_HORIZON_DAYS, lo + step)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if reaches(mid):
            hi = mid
        else:
            lo = mid
    return last + hi * DAY


def _time_cross(
    k: Silence,
    others: float,
    band: int,
    t_from: int,
    c: CompiledPolicy,
    hi: int | None = None,
    before: int | None = None,
) -> int | None:
    """First instant (whole second) after ``t_from`` at which the time part alone lifts
    the score above `band`, the other parts held at `others`. None: never (or, with
    `before`, not before it).

    Without an order the time part only rises, so the band test is monotone in t. With no
    model it moves at whole days only (`_silence_cross`); with one, a bisection on whole
    seconds, with the very predicate the grade uses (rounding included), gives the exact
    instant. `hi`: an instant already known to be above.
    """
    target = _target(band, others, k, c)
    if target is None:
        return None
    # Monotone: the crossing is at or after `before` exactly when the second before it is
    # still below the target.
    if (
        before is not None
        and hi is None
        and (before <= t_from + 1 or score_of(time_part(k, before - 1, c), others, c) < target)
    ):
        return None
    if k.model is None:
        return _silence_cross(k, others, target, t_from, c)
    lo = t_from
    if score_of(time_part(k, lo, c), others, c) >= target:
        return lo + 1  # (others held at a worst case: a lower bound, woken to recompute)
    if hi is None:
        step = DAY
        hi = lo + step
        while score_of(time_part(k, hi, c), others, c) < target:
            if step > _HORIZON:
                return None
            lo = hi
            step *= 2
            hi = t_from + step
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if score_of(time_part(k, mid, c), others, c) >= target:
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
    """When the time part alone (silence, and a churn model's signal) lifts the churn
    score into the next band.

    The other components are held at their current values (their own changes are due
    times of their own), or with `worst_engagement` the engagement term at its maximum
    (used when engagement cannot move the band now: a lower bound of when it could).
    `p`: parts already computed at ``s.as_of``. With `before` (a due already known),
    returns None as soon as the answer is sure to be no earlier than it.
    """
    k = silence_of(s, c)
    if k is None:
        return None
    if p is None:
        p = churn_core(s, s.as_of, c)
    band = band_of(score_of(p.recency, p.others, c), c)
    others = add_engagement(p.base, 1.0, c) if worst_engagement else p.others
    return _time_cross(k, others, band, s.as_of, c, before=before)


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
    from the time part and engagement together (complaint and survey expiries are due
    times of their own, so the other components are held).

    `p`: the exact parts at ``s.as_of`` (engagement included). Engagement is constant
    between the midnights at which a day's interactions change half or leave the
    window; between them only the time part moves, and only upwards. So: walk those
    midnights in order, checking the time part's crossing inside each stretch and the
    band at each midnight. A midnight at which the engagement part stays what it was
    is not a stretch end (the time part is the same function across it), which keeps
    the evaluations few. With `before`, gives up (None) once the answer cannot be earlier.
    """
    t0 = s.as_of
    band = band_of(score_of(p.recency, p.others, c), c)
    k = silence_of(s, c)
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
    base, others, need_base = p.base, p.others, c.engagement_min_baseline
    mins = c.band_mins
    target = mins[band + 1] if band + 1 < len(mins) else 2.0
    t_from = t0
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
        # The time part only rises inside the stretch: a crossing before m shows at its end.
        if k is not None and score_of(time_part(k, m - 1, c), others, c) >= target:
            return _time_cross(k, others, band, t_from, c, hi=m - 1)
        if last_one:
            return None
        others = now_others
        tp = 0.0 if k is None else time_part(k, m, c)
        if band_of(score_of(tp, others, c), c) != band:
            return m
        t_from = m
    if k is None:
        return None
    return _time_cross(k, others, band, t_from, c, before=before)
