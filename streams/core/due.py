"""When can a customer's grade next change without a new event?

Each part below lists the instants after ``s.as_of`` at which one measure may change by the
passing of time alone; the churn band's crossings are in `churn_due`. `next_due_c` is the
earliest of them all. `apply` keeps ``s.due`` as the minimum of the old due and the parts
an event touched: a lower bound, so a sweep may wake a customer for nothing (no outputs)
but never misses a change.
"""

from __future__ import annotations

from streams.core.churn import ChurnCore, churn_core
from streams.core.churn_due import band_due, churn_due, engagement_sensitive
from streams.core.compiled import DAY, CompiledPolicy
from streams.core.intent import intent_conditions
from streams.core.state import (
    I_CALL,
    I_FULL_PRICE,
    I_INQUIRY,
    I_SITE_STORE,
    I_VISIT,
    NO_TS,
    CustomerState,
    first_day,
)
from streams.core.tier_progress import warning_at


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
    sv = s.survey
    if sv is not None:  # each metric's answer ages out on its own ([0], [2], [4]: int times)
        for i in (0, 2, 4):
            if sv[i] != NO_TS:
                cands.append(int(sv[i]) + c.survey_age_s + 1)
    return _first_after(s.as_of, cands)


def holds_due(s: CustomerState, c: CompiledPolicy) -> int | None:
    """End of a tier's downgrade grace and its warning; end of an alert cooldown holding
    back a change."""
    cands: list[int] = []
    if s.below_since is not None:
        cands.append(s.below_since + c.grace_s)
        warn = warning_at(s.below_since, c)
        if warn is not None:
            cands.append(warn)
    if s.last_alert is not None:
        wants = c.band_rank.get(s.band, 0) >= c.alert_band
        if wants != s.alerted:
            cands.append(s.last_alert + c.cooldown_s)
    return _first_after(s.as_of, cands)


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
