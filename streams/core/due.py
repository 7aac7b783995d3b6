"""When can a customer's grade next change without a new event?

Each part below lists the instants after ``s.as_of`` at which one measure may change by the
passing of time alone. `next_due_c` is the earliest of them all. `apply` keeps ``s.due`` as
the minimum of the old due and the parts an event touched: a lower bound, so a sweep may
wake a customer for nothing (no outputs) but never misses a change.
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
from streams.core.intent import intent_conditions
from streams.core.state import (
    I_CALL,
    I_FULL_PRICE,
    I_INQUIRY,
    I_SITE_STORE,
    I_TOTAL,
    I_VISIT,
    CustomerState,
    first_day,
)


def _first_after(t0: int, cands: list[int]) -> int | None:
    best = None
    for x in cands:
        if x > t0 and (best is None or x < best):
            best = x
    return best


def order_times_due(s: CustomerState, c: CompiledPolicy) -> int | None:
    """Recency bin edges and lifecycle thresholds, from the first/last order times."""
    last = s.last_order
    if last is None:
        return None
    t0 = s.as_of
    best = None
    # recency_days = (t - last) // DAY passes an edge e when it reaches e + 1.
    for e in c.r_max_days:
        x = last + (e + 1) * DAY
        if x > t0:
            best = x
            break
    for x in (last + c.silent_s + 1, last + c.churned_s + 1):
        if x > t0 and (best is None or x < best):
            best = x
    first, react = s.first_order, s.reactivated_at
    if first is not None:
        x = first + c.new_s + 1
        if x > t0 and (best is None or x < best):
            best = x
    if react is not None:
        x = react + c.reactivated_s + 1
        if x > t0 and (best is None or x < best):
            best = x
    return best


def order_day_due(day: int, c: CompiledPolicy) -> int:
    """When a day's orders leave the RFM window."""
    return (day + c.window_days) * DAY


def orders_due(s: CustomerState, c: CompiledPolicy) -> int | None:
    """Order times' thresholds and the oldest order day leaving the window."""
    best = order_times_due(s, c)
    if s.days:
        x = order_day_due(first_day(s.days), c)
        if x > s.as_of and (best is None or x < best):
            best = x
    return best


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


def indicator_falls(s: CustomerState, c: CompiledPolicy) -> list[int]:
    """For each intent indicator now at A, the instant it falls back (one per indicator):
    when the day of its k-th most recent unit (k = what it needs) leaves the window."""
    idays = s.idays
    lo = s.as_of // DAY - c.intent_days
    width = c.intent_days
    visits, calls, sites = c.repeat_visit_days, c.min_calls, c.min_site_store
    asks, full = c.min_purchase_inquiries, 1
    falls: list[int] = []
    # Newest day first: `idays` is in ascending day order, so walk its keys backwards.
    days = list(idays)
    buckets = list(idays.values())
    i = len(days)
    while i > 0:
        i -= 1
        d = days[i]
        if d <= lo:
            break
        b = buckets[i]
        x = (d + width) * DAY
        site = b[I_SITE_STORE]
        if visits > 0 and (b[I_VISIT] or site):
            visits -= 1
            if not visits:
                falls.append(x)
        if sites > 0 and site:
            sites -= site
            if sites <= 0:
                falls.append(x)
        if calls > 0 and b[I_CALL]:
            calls -= b[I_CALL]
            if calls <= 0:
                falls.append(x)
        if asks > 0 and b[I_INQUIRY]:
            asks -= b[I_INQUIRY]
            if asks <= 0:
                falls.append(x)
        if full > 0 and b[I_FULL_PRICE]:
            full = 0
            falls.append(x)
    return falls


def indicator_reached(s: CustomerState, slot: int, day: int, c: CompiledPolicy) -> bool:
    """Did the interaction just folded into `slot` on `day` bring an intent indicator to A?

    Only then can `intent_grade_due` come earlier. One more unit never makes an indicator
    already at A fall sooner (the k-th most recent unit of a multiset only moves later
    with an added unit), so with the same indicators at A the falls, and the due they
    give, are no earlier than before, and the old due still covers them: `apply` skips
    the walk. An indicator reaches A with this unit exactly when its count in the window
    now equals its minimum (so a count walk stops once it is past the minimum).
    """
    idays = s.idays
    b = idays[day]
    lo = s.as_of // DAY - c.intent_days
    if slot in (I_VISIT, I_SITE_STORE):
        need = c.repeat_visit_days
        if need > 0 and b[I_VISIT] + b[I_SITE_STORE] == 1:  # the day's first visit
            n = 0
            for d, x in idays.items():
                if d > lo and (x[I_VISIT] or x[I_SITE_STORE]):
                    n += 1
                    if n > need:
                        break
            if n == need:
                return True
        if slot == I_VISIT:
            return False
        need = c.min_site_store
    elif slot == I_CALL:
        need = c.min_calls
    else:
        need = c.min_purchase_inquiries
    if need <= 0 or b[slot] > need:
        return False
    n = 0
    for d, x in idays.items():
        if d > lo:
            n += x[slot]
            if n > need:
                return False
    return n == need


def _full_price_in_window(s: CustomerState, c: CompiledPolicy) -> bool:
    """Is the price-tolerance indicator at A (the indicator most often missing)?"""
    lo = s.as_of // DAY - c.intent_days
    for d, b in s.idays.items():  # noqa: SIM110 (a generator costs more on this hot path)
        if b[I_FULL_PRICE] and d > lo:
            return True
    return False


def complaints_due(s: CustomerState, c: CompiledPolicy) -> int | None:
    cands = [(day + c.complaint_days) * DAY for day in s.cdays]
    if s.survey is not None:
        cands.append(int(s.survey[0]) + c.survey_age_s + 1)  # [0] is the int answer time
    return _first_after(s.as_of, cands)


def holds_due(s: CustomerState, c: CompiledPolicy) -> int | None:
    """End of a tier's downgrade grace; end of an alert cooldown holding back a change."""
    cands: list[int] = []
    if s.below_since is not None:
        cands.append(s.below_since + c.grace_s)
    if s.last_alert is not None:
        wants = c.band_rank.get(s.band, 0) >= c.alert_band
        if wants != s.alerted:
            cands.append(s.last_alert + c.cooldown_s)
    return _first_after(s.as_of, cands)


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


def intent_grade_due(s: CustomerState, c: CompiledPolicy) -> int | None:
    """When the intent grade falls by time alone: enough indicators now at A falling back
    to cross the matrix's next threshold (5 and 3 with both conditions at A, 5 with one).

    The conditions change by time only at order-day and survey expiries, due times of
    their own.
    """
    ability, satisfaction = intent_conditions(s, s.as_of, c)
    if not (ability or satisfaction):
        return None
    if not (ability and satisfaction) and not _full_price_in_window(s, c):
        return None  # only C -> D could be left, and C needs all five indicators
    falls = indicator_falls(s, c)
    n = len(falls)
    if ability and satisfaction:
        if n >= 5:
            drop = 1  # A -> B at the first fall
        elif n >= 3:
            drop = n - 2  # B -> C when fewer than 3 remain
        else:
            return None
    elif n >= 5:
        drop = 1  # C -> D
    else:
        return None
    falls.sort()
    return falls[drop - 1]


def next_due_c(s: CustomerState, c: CompiledPolicy, k: ChurnCore | None = None) -> int | None:
    """The earliest instant after ``s.as_of`` at which the grade may change by time alone.

    `k`: the churn parts at ``s.as_of``, if already known (`settle` gives them); they may
    leave engagement out only when `engagement_sensitive(k)` is False.
    """
    if k is None:
        k = churn_core(s, s.as_of, c)
    best = orders_due(s, c)
    for x in (intent_grade_due(s, c), complaints_due(s, c), holds_due(s, c)):
        if x is not None and (best is None or x < best):
            best = x
    if engagement_sensitive(k, c):
        x = band_due(s, c, k, best)
    else:
        x = churn_due(s, c, k, best, worst_engagement=True)
    if x is not None and (best is None or x < best):
        best = x
    return best


def min_due(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if a < b else b
