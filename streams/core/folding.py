"""Folding events into the rolling aggregates, and pruning what leaves the windows.

Every fold is commutative within the lateness bound (sums, min/max, set-once values), so
events that arrive out of order give the same aggregates. An order's effect on the day
buckets is its *contribution*: the fold removes the old contribution of the order's record,
updates the record, and adds the new one. So a refund or cancellation that arrives before
its order is moved onto the order's day when the order turns up.

Callers advance the state first, so ``s.as_of`` is the grading time and its UTC day is
"today" for the windows: a bucket of day ``d`` is inside a window of ``n`` days while
``d > today - n``.
"""

from __future__ import annotations

from typing import Final

from streams.core.compiled import DAY, CompiledPolicy
from streams.core.state import (
    C_BILLING,
    C_ESCALATED,
    C_OPEN_SEV,
    C_OPENED,
    C_RESOLVED,
    C_SEEN,
    C_SEVERITY,
    I_FULL_PRICE,
    I_KINDS,
    I_TOTAL,
    NO_TS,
    O_ADJ_DAY,
    O_CANCEL,
    O_CANCELLED,
    O_PLACED,
    O_REFUNDED,
    O_TS,
    CustomerState,
    put_bucket,
    shared_counts,
)

PLACED: Final = 0
REFUNDED: Final = 1
CANCELLED: Final = 2
OPENED: Final = 0
ESCALATED: Final = 1
RESOLVED: Final = 2


# --- orders -----------------------------------------------------------------------------


def _contribution(e: list[int]) -> tuple[int, int, int] | None:
    """(day, orders, net cents) an order record adds to the day buckets, or None."""
    if e[O_TS] != NO_TS:
        if e[O_CANCELLED]:
            return None
        return e[O_TS] // DAY, 1, max(0, e[O_PLACED] - e[O_REFUNDED])
    # The order itself is unknown (too old, forgotten, or not arrived yet): its refund or
    # cancellation still lowers spend, on the day it happened. Max, not sum, so that a
    # refund plus a cancellation of the same order is not counted twice.
    take = max(e[O_REFUNDED], e[O_CANCEL])
    return (e[O_ADJ_DAY], 0, -take) if take else None


def _bucket_add(s: CustomerState, c: tuple[int, int, int], sign: int, lo: int) -> None:
    day, n, cents = c
    if day <= lo:
        return  # outside the window: counts for nothing
    b = s.days.get(day)
    if b is None:
        b = [0, 0]
        put_bucket(s.days, day, b)
    b[0] += sign * n
    b[1] += sign * cents
    s.win_count += sign * n
    s.win_cents += sign * cents
    if b[0] == 0 and b[1] == 0:
        del s.days[day]


def _recompute_bounds(s: CustomerState) -> None:
    """First/last live order after a cancellation, from tracked orders and untracked bounds."""
    if s.live_orders <= 0:
        s.live_orders = 0
        s.first_order = s.last_order = s.untracked_first = s.untracked_last = None
        s.reactivated_at = None
        return
    times = [e[O_TS] for e in s.orders.values() if e[O_TS] != NO_TS and not e[O_CANCELLED]]
    if s.untracked_first is not None:
        times.append(s.untracked_first)
    if s.untracked_last is not None:
        times.append(s.untracked_last)
    if times:
        s.first_order, s.last_order = min(times), max(times)


def _evict_order(s: CustomerState) -> None:
    """Forget the oldest tracked order; its effect stays in the buckets."""

    def age(item: tuple[str, list[int]]) -> tuple[int, str]:
        e = item[1]
        return (e[O_TS] if e[O_TS] != NO_TS else e[O_ADJ_DAY] * DAY), item[0]

    oid, e = min(s.orders.items(), key=age)
    del s.orders[oid]
    _untrack(s, e)


def _untrack(s: CustomerState, e: list[int]) -> None:
    ts = e[O_TS]
    if ts != NO_TS and not e[O_CANCELLED]:
        if s.untracked_first is None or ts < s.untracked_first:
            s.untracked_first = ts
        if s.untracked_last is None or ts > s.untracked_last:
            s.untracked_last = ts


def fold_order(
    s: CustomerState,
    kind: int,
    order_id: str,
    ts: int,
    cents: int,
    full_price: bool,
    c: CompiledPolicy,
) -> None:
    """Fold order_placed / order_refunded / order_cancelled (amount already in base cents)."""
    today = s.as_of // DAY
    lo = today - c.window_days
    day = ts // DAY
    e = s.orders.get(order_id)
    if e is None and kind == PLACED:
        _place_new(s, order_id, ts, day, cents, full_price, today, lo, c)
        return
    if e is None:
        e = [NO_TS, 0, 0, 0, day, 0]
        tracked = False
    else:
        tracked = True
        old = _contribution(e)
        if old is not None:
            _bucket_add(s, old, -1, lo)
    if kind == PLACED:
        old_ts = e[O_TS]
        if old_ts != NO_TS and (ts, cents) > (old_ts, e[O_PLACED]):
            # order_id placed twice with different content (a producer bug): the later,
            # larger one wins whatever the arrival order, so the fold still commutes.
            if full_price and day > today - c.intent_days:
                _count_full_price(s, day)
            e[O_TS], e[O_PLACED] = ts, cents
            if not e[O_CANCELLED]:
                s.live_orders -= 1
                if s.reactivated_at == old_ts:
                    s.reactivated_at = None
                _add_live(s, ts, c)
                if old_ts in (s.first_order, s.last_order):
                    _recompute_bounds(s)
        elif old_ts != NO_TS:
            if full_price and day > today - c.intent_days:
                _count_full_price(s, day)
        else:
            e[O_TS], e[O_PLACED] = ts, cents
            if full_price and day > today - c.intent_days:
                _count_full_price(s, day)
            if not e[O_CANCELLED]:
                _add_live(s, ts, c)
    elif kind == REFUNDED:
        e[O_REFUNDED] += cents
        e[O_ADJ_DAY] = min(e[O_ADJ_DAY], day)  # min, max, sum: the fold commutes
    elif e[O_CANCELLED]:  # cancelled again: keep the largest amount, change nothing else
        e[O_CANCEL] = max(e[O_CANCEL], cents)
        e[O_ADJ_DAY] = min(e[O_ADJ_DAY], day)
    else:  # CANCELLED
        e[O_CANCELLED], e[O_CANCEL] = 1, max(e[O_CANCEL], cents)
        e[O_ADJ_DAY] = min(e[O_ADJ_DAY], day)
        if e[O_TS] != NO_TS:
            s.live_orders -= 1
            if s.reactivated_at == e[O_TS]:
                s.reactivated_at = None
            if e[O_TS] in (s.first_order, s.last_order) or s.live_orders <= 0:
                _recompute_bounds(s)  # the record is cancelled now, so it is left out
    new = _contribution(e)
    if new is not None:
        _bucket_add(s, new, 1, lo)
    # Track an order only while it can still matter to the window.
    if e[O_TS] != NO_TS and e[O_TS] // DAY <= lo:
        if tracked:
            del s.orders[order_id]
        if not e[O_CANCELLED] and kind == PLACED:
            _untrack(s, e)
        return
    if not tracked:
        s.orders[order_id] = e
        if len(s.orders) > c.max_orders:
            _evict_order(s)


def _place_new(
    s: CustomerState,
    order_id: str,
    ts: int,
    day: int,
    cents: int,
    full_price: bool,
    today: int,
    lo: int,
    c: CompiledPolicy,
) -> None:
    """The common case, an order never seen before: same effect as the general path."""
    e = [ts, cents, 0, 0, day, 0]
    if full_price and day > today - c.intent_days:
        _count_full_price(s, day)
    _add_live(s, ts, c)
    if day <= lo:
        _untrack(s, e)
        return
    _bucket_add(s, (day, 1, cents), 1, lo)
    s.orders[order_id] = e
    if len(s.orders) > c.max_orders:
        _evict_order(s)


def _count_full_price(s: CustomerState, day: int) -> None:
    _count(s.idays, day, s.as_of // DAY, I_FULL_PRICE, 0)


def _add_live(s: CustomerState, ts: int, c: CompiledPolicy) -> None:
    s.live_orders += 1
    last = s.last_order
    if last is None:
        s.first_order = s.last_order = ts
        return
    if ts > last:
        # An order after a silence long enough to make the customer silent is a reactivation.
        if ts - last > c.silent_s and (s.reactivated_at is None or ts > s.reactivated_at):
            s.reactivated_at = ts
        s.last_order = ts
    if s.first_order is None or ts < s.first_order:
        s.first_order = ts


# --- interactions -----------------------------------------------------------------------


def fold_interaction(s: CustomerState, slot: int, ts: int, c: CompiledPolicy) -> int | None:
    """Count one interaction; returns its day if it is inside the intent window, else None."""
    day = ts // DAY
    lo = s.as_of // DAY - c.intent_days
    if day <= lo:
        return None
    if _count(s.idays, day, lo + c.intent_days, slot, 1):
        drop_days_through(s.idays, lo)
    return day


def _count(idays: dict[int, tuple[int, ...]], day: int, today: int, slot: int, total: int) -> bool:
    """One more unit in `slot` of `day`'s bucket (and `total` more interactions); True if
    the bucket is new."""
    b = idays.get(day)
    new = b is None
    counts = list(iday_bucket(idays, day, today) if b is None else b)
    counts[slot] += 1
    counts[I_TOTAL] += total
    idays[day] = shared_counts(tuple(counts))
    return new


_NO_COUNTS: Final = (0,) * I_KINDS


def iday_bucket(idays: dict[int, tuple[int, ...]], day: int, today: int) -> tuple[int, ...]:
    """The interaction bucket of `day`, created if new, in its place in day order.

    `today`: the day of ``s.as_of``, which no bucket is after (events are folded at or
    before as_of). A new day is nearly always today, so it goes at the end; a late
    event's older day puts the buckets back in order (rare: a day with no interaction
    yet that is older than the newest one, within the lateness bound).
    """
    b = idays.get(day)
    if b is not None:
        return b
    late = False
    if day < today:
        for newest in reversed(idays):
            late = day < newest
            break
    b = _NO_COUNTS
    put_bucket(idays, day, b)
    if late:
        ordered = sorted(idays.items())
        idays.clear()
        idays.update(ordered)
    return b


def drop_days_through(idays: dict[int, tuple[int, ...]], lo: int) -> None:
    """Forget the interaction days at or before `lo` (out of the window: nothing reads
    them any more). They are the first keys, so the walk stops at the first kept day.

    Their leaving is not always a due time (only when it can move a grade), so a new day
    bucket sweeps the old ones: the state stays bounded between due times.
    """
    for d in idays:
        if d > lo:
            return  # the common case: the oldest day is still inside
        break
    stale: list[int] = []
    for d in idays:
        if d > lo:
            break
        stale.append(d)
    for d in stale:
        del idays[d]


def fold_survey(
    s: CustomerState, ts: int, nps: int | float, csat: int | float, ces: int | float
) -> None:
    """Keep each metric's latest answer on its own (ties broken by value, so the fold
    commutes); -1 = absent, and an absent metric leaves that metric's answer as it was.

    >>> from streams.core.state import new_state
    >>> s = new_state("c-1")
    >>> fold_survey(s, 10, 2, -1, -1)
    >>> fold_survey(s, 20, -1, 5, -1)  # a later CSAT-only answer keeps the NPS
    >>> fold_survey(s, 30, -1, -1, -1)  # an answer without scores changes nothing
    >>> s.survey == [10, 2, 20, 5, NO_TS, -1]
    True
    """
    if nps == -1 and csat == -1 and ces == -1:
        return
    sv = s.survey
    if sv is None:
        sv = s.survey = [NO_TS, -1, NO_TS, -1, NO_TS, -1]
    for i, value in ((0, nps), (2, csat), (4, ces)):
        if value != -1 and (ts > sv[i] or (ts == sv[i] and value > sv[i + 1])):
            sv[i], sv[i + 1] = ts, value


def move_to(s: CustomerState, t: int) -> None:
    """Set as_of to a later ``t`` (nothing is cached per day, so nothing else to do)."""
    s.as_of = t


# --- complaints -------------------------------------------------------------------------


def fold_complaint(
    s: CustomerState,
    kind: int,
    complaint_id: str,
    ts: int,
    severity: int,
    billing: bool,
    c: CompiledPolicy,
) -> None:
    r = s.complaints.get(complaint_id)
    if r is None:
        r = [NO_TS, severity, int(billing), 0, 0, ts, -1]
        s.complaints[complaint_id] = r
    r[C_SEVERITY] = max(r[C_SEVERITY], severity)
    r[C_BILLING] = max(r[C_BILLING], int(billing))
    r[C_SEEN] = max(r[C_SEEN], ts)
    if kind == OPENED:
        # Opened twice (a producer retry with changes): the earliest time and the highest
        # severity win whatever the arrival order; the day bucket count moves with them.
        old_ts, old_sev = r[C_OPENED], r[C_OPEN_SEV]
        if old_ts == NO_TS or ts < old_ts or severity > old_sev:
            lo = s.as_of // DAY - c.complaint_days
            if old_ts != NO_TS:
                b = s.cdays.get(old_ts // DAY)
                if b is not None and b[old_sev] > 0:
                    b[old_sev] -= 1
                    if not any(b):
                        del s.cdays[old_ts // DAY]
            r[C_OPENED] = ts if old_ts == NO_TS else min(ts, old_ts)
            r[C_OPEN_SEV] = max(severity, old_sev)
            day = r[C_OPENED] // DAY
            if day > lo:
                b = s.cdays.get(day)
                if b is None:
                    b = [0, 0, 0]
                    put_bucket(s.cdays, day, b)
                b[r[C_OPEN_SEV]] += 1
    elif kind == ESCALATED:
        r[C_ESCALATED] = 1
    else:
        r[C_RESOLVED] = 1
    if len(s.complaints) > c.max_complaints:
        # Forget resolved complaints first, then the oldest; the day buckets keep the counts.
        cid = min(
            s.complaints,
            key=lambda k: (not s.complaints[k][C_RESOLVED], s.complaints[k][C_SEEN], k),
        )
        del s.complaints[cid]


def is_open(r: list[int]) -> bool:
    return not r[C_RESOLVED] and (r[C_OPENED] != NO_TS or bool(r[C_ESCALATED]))


# --- pruning ----------------------------------------------------------------------------


def prune(s: CustomerState, c: CompiledPolicy) -> None:
    """Drop what left the windows as of ``s.as_of`` and refresh the cached sums."""
    today = s.as_of // DAY
    lo = today - c.window_days
    if s.days:
        for day in [d for d in s.days if d <= lo]:
            b = s.days.pop(day)
            s.win_count -= b[0]
            s.win_cents -= b[1]
    if s.orders:
        for oid in [
            k
            for k, e in s.orders.items()
            if (e[O_TS] // DAY if e[O_TS] != NO_TS else e[O_ADJ_DAY]) <= lo
        ]:
            _untrack(s, s.orders.pop(oid))
    if s.idays:
        drop_days_through(s.idays, today - c.intent_days)
    if s.cdays:
        clo = today - c.complaint_days
        for day in [d for d in s.cdays if d <= clo]:
            del s.cdays[day]
    floor = s.as_of - c.lateness_s
    if s.complaints:
        for cid in [k for k, r in s.complaints.items() if r[C_RESOLVED] and r[C_SEEN] < floor]:
            del s.complaints[cid]
    if s.seen:
        for eid in [k for k, t in s.seen.items() if t < floor]:
            del s.seen[eid]
