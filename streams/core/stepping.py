"""Held grades and their transitions: tier grace, lifecycle stage, churn alerts and cooldown.

`settle` re-grades the held parts of a state at ``t`` (its as_of) and says what changed;
`roll` walks a state through its due times up to ``now``. The engine turns transitions
into output events; `grading.grade` uses `roll` on a copy to look ahead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, NamedTuple

from streams.core.churn import ChurnCore, band_of, churn_core, score_of, with_engagement
from streams.core.churn_due import engagement_sensitive
from streams.core.compiled import CompiledPolicy
from streams.core.due import next_due_c
from streams.core.folding import prune
from streams.core.lifecycle import lifecycle, stage_name
from streams.core.state import CustomerState
from streams.core.tier_progress import downgrade, warning_at
from streams.core.tiers import qualifying_tier

# Why a re-grade happens; it decides how a tier may fall.
EVENT: Final = 0
TIME: Final = 1
POLICY: Final = 2

TIER_CHANGED: Final = "tier_changed"
CHURN_RISK_CHANGED: Final = "churn_risk_changed"
LIFECYCLE_CHANGED: Final = "lifecycle_changed"
TIER_WARNING: Final = "tier_warning"


class Transition(NamedTuple):
    """One held grade that changed, or a coming downgrade (TIER_WARNING: `previous` is
    the held tier, `current` the one it falls to): `extra` is the direction (tier) or
    alert (churn).

    For churn, `previous` is the band of the customer's previous alert and `before` the
    band the grade held just before this change (they differ when the band moved
    without an alert in between)."""

    type: str
    previous: str
    current: str
    extra: str = ""
    score: float = 0.0
    before: str = ""


def settle_tier(
    s: CustomerState, t: int, c: CompiledPolicy, how: int, at_once: bool
) -> Transition | None:
    """Upgrades apply at once; a fall waits out the grace unless `at_once` (refund, policy).

    During the grace, its warning is the transition at `warning_at`: a due time of its
    own (`due.holds_due`), so only a TIME step meets it, once, unless the grace starts
    there (a grace shorter than the warning)."""
    q = qualifying_tier(s, c)
    names = c.tier_names
    held_name = s.tier or names[0]
    held = c.tier_rank.get(held_name, -1)  # -1: a tier of another policy's ladder
    new = q
    if q >= held or at_once or how == POLICY:
        s.below_since = None
    else:
        started = s.below_since is None
        if s.below_since is None:
            s.below_since = t
        if t - s.below_since >= c.grace_s:
            s.below_since = None
        else:
            new = held
            if (started or how == TIME) and warning_at(s.below_since, c) == t:
                return _warning(s, held, c)
    new_name = names[new]
    s.tier = new_name
    if new_name == held_name:
        return None
    return Transition(TIER_CHANGED, held_name, new_name, "up" if new > held else "down")


def _warning(s: CustomerState, held: int, c: CompiledPolicy) -> Transition | None:
    """The warning of the running grace, unless the tier is earned back by time before
    it ends (an old refund's day leaving the window can do that)."""
    fall = downgrade(s, held, c)
    below = s.below_since
    if below is None or fall.at != below + c.grace_s:
        return None
    return Transition(TIER_WARNING, c.tier_names[held], c.tier_names[fall.to])


def settle_stage(s: CustomerState, t: int, c: CompiledPolicy) -> Transition | None:
    st = lifecycle(s, t, c)
    if st == s.stage:
        return None
    prev, s.stage = s.stage, st
    return Transition(LIFECYCLE_CHANGED, stage_name(prev), stage_name(st))


def settle_churn(
    s: CustomerState, t: int, c: CompiledPolicy, parts: ChurnCore | None = None
) -> tuple[Transition | None, ChurnCore]:
    """Alert when the band reaches the alert level or drops below it, at most once a cooldown.

    Engagement (a scan of the interaction days) is read only when it could move the band.
    `parts`: the churn parts at ``t`` when the caller has them already, engagement
    included if `engagement_sensitive`.
    """
    p = parts
    if p is None:
        p = churn_core(s, t, c, engagement=False)
        if engagement_sensitive(p, c):
            p = with_engagement(p, s, t, c)
    score = score_of(p.recency, p.others, c)
    band = band_of(score, c)
    name = c.band_names[band]
    before = s.band if s.band in c.band_rank else c.band_names[0]
    s.band = name
    wants = band >= c.alert_band
    if wants == s.alerted:
        return None, p
    if s.last_alert is not None and t - s.last_alert < c.cooldown_s:
        return None, p  # held back; holds_due wakes the customer when the cooldown ends
    prev = s.alert_band or c.band_names[0]
    s.alerted, s.alert_band, s.last_alert = wants, name, t
    exact = churn_core(s, t, c)  # the score the alert shows includes engagement
    score = score_of(exact.recency, exact.others, c)
    alert = "raised" if wants else "cleared"
    return Transition(CHURN_RISK_CHANGED, prev, name, alert, score, before), p


def settle(
    s: CustomerState,
    t: int,
    c: CompiledPolicy,
    how: int,
    *,
    orders: bool = True,
    churn: bool = True,
    at_once: bool = False,
    parts: ChurnCore | None = None,
) -> tuple[list[Transition], ChurnCore | None]:
    """Re-grade the held parts at ``t``; returns the transitions and the churn parts used.

    For an event, `orders=False` skips tier and stage (only orders move them) and
    `churn=False` skips churn (the caller knows the event cannot move the band).
    `parts`: the churn parts at ``t``, if the caller computed them (see `settle_churn`).
    """
    out: list[Transition] = []
    if orders or how != EVENT:
        tr = settle_tier(s, t, c, how, at_once)
        if tr is not None:
            out.append(tr)
    if churn or how != EVENT:
        tr, parts = settle_churn(s, t, c, parts)
        if tr is not None:
            out.append(tr)
    if orders or how != EVENT:
        tr = settle_stage(s, t, c)
        if tr is not None:
            out.append(tr)
    return out, parts


def roll(
    s: CustomerState,
    now: int,
    c: CompiledPolicy,
    on_step: Callable[[int, list[Transition]], None] | None = None,
) -> bool:
    """Re-grade at every due time <= now in turn; True if at least one was processed.

    ``s.as_of`` ends at the LAST due time processed, never at ``now``: the state, and so
    the snapshot, are a function of the events alone, not of when sweeps happen to run.
    ``s.due`` may be a lower bound (`apply` keeps one): the exact next due is computed
    first (unless the last `roll` or `regrade` left it exact and the state has not moved
    since: ``s.exact_due``), and when it is after ``now`` nothing is processed, as_of
    stays, and ``s.due`` is refreshed to that exact time.

    `on_step(t, transitions)` runs at each step that changed something, while the state
    is still as of ``t`` (outputs quote the grade of their own time, not of ``now``).
    """
    due = s.due
    if due is None or due > now:
        return False
    if s.exact_due != (s.seq, s.as_of, due):
        due = next_due_c(s, c)
    stepped = False
    while due is not None and due <= now:
        s.as_of = due  # due times are always after as_of
        prune(s, c)
        tr, parts = settle(s, due, c, TIME)
        t, due = due, next_due_c(s, c, parts)
        s.due = due
        stepped = True
        if tr and on_step is not None:
            on_step(t, tr)
    s.due = due
    s.exact_due = (s.seq, s.as_of, due)
    return stepped


def regrade(s: CustomerState, now: int, c: CompiledPolicy) -> list[Transition]:
    """Re-grade under a new policy at max(as_of, now): every held grade moves at once."""
    if now > s.as_of:
        s.as_of = now
    prune(s, c)
    s.policy_version = c.version
    s.seq += 1
    if s.band and s.band not in c.band_rank:
        s.band = ""
    out, _ = settle(s, s.as_of, c, POLICY)
    s.due = next_due_c(s, c)
    s.exact_due = (s.seq, s.as_of, s.due)
    return out
