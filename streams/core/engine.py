"""The only API the worker and replay call: fold events, let time pass, emit transitions.

Times are int epoch seconds (UTC). Events are the validated JSON dicts of the input topics
(product.md §1). Every function here MUTATES the state it is given, in place, and returns
the output events that became due; the caller persists the state and sends the outputs.

>>> from streams.core.policy import load_policy
>>> p = load_policy()
>>> s = new_state("c-9")
>>> ev = {"event_id": "e1", "customer_id": "c-9", "type": "order_placed",
...       "occurred_at": "2024-05-01T09:00:00+02:00", "order_id": "o1",
...       "amount": 100, "currency": "EUR"}
>>> r = apply(s, ev, p)
>>> r.changed, r.rejection, [o["type"] for o in r.outputs]
(True, None, ['lifecycle_changed'])
>>> r.outputs[0]["previous_stage"], r.outputs[0]["stage"], r.outputs[0]["occurred_at"]
('prospect', 'new', '2024-05-01T07:00:00Z')
>>> apply(s, ev, p).duplicate
True
>>> apply(s, ev | {"event_id": "e2", "currency": "XXX"}, p).rejection.code
'unknown_currency'
>>> snapshot(s, p)["rfm"]["monetary"]  # 100 EUR at 1.08
108.0
>>> [(o["type"], o["stage"], o["occurred_at"]) for o in advance(s, s.as_of + 31 * 86400, p)]
[('lifecycle_changed', 'active', '2024-05-31T07:00:01Z')]
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Final

from streams.core.churn import ChurnCore, churn_core, churn_reasons, with_engagement
from streams.core.churn_due import band_due, churn_due, engagement_sensitive
from streams.core.compiled import CompiledPolicy
from streams.core.due import (
    complaints_due,
    holds_due,
    indicator_reached,
    intent_grade_due,
    min_due,
    next_due_c,
    order_day_due,
    order_times_due,
)
from streams.core.errors import Rejection
from streams.core.folding import (
    CANCELLED,
    ESCALATED,
    OPENED,
    PLACED,
    REFUNDED,
    RESOLVED,
    fold_complaint,
    fold_interaction,
    fold_order,
    fold_survey,
    move_to,
)
from streams.core.grading import build_snapshot
from streams.core.policy import Policy
from streams.core.state import (
    I_CALL,
    I_INQUIRY,
    I_OTHER,
    I_PRICE,
    I_SITE_STORE,
    I_VISIT,
    CustomerState,
    new_state,
    oldest_day,
)
from streams.core.stepping import (
    CHURN_RISK_CHANGED,
    EVENT,
    LIFECYCLE_CHANGED,
    TIER_CHANGED,
    TIER_WARNING,
    Transition,
    regrade,
    roll,
    settle,
)
from streams.core.tier_progress import held_block
from streams.core.tiers import qualifying_tier
from streams.core.timefmt import format_rfc3339, parse_rfc3339

__all__ = [
    "OUTPUT_TOPICS",
    "Result",
    "advance",
    "apply",
    "event_cause",
    "event_time",
    "new_state",
    "output_events",
    "outputs",
    "regrade_for_policy",
    "revision",
    "snapshot",
]

OUTPUT_TOPICS: Final[dict[str, str]] = {
    TIER_CHANGED: "tier-changes",
    CHURN_RISK_CHANGED: "churn-risk",
    LIFECYCLE_CHANGED: "lifecycle-changes",
    TIER_WARNING: "tier-warnings",
}

_ORDER_KINDS: Final = {
    "order_placed": PLACED,
    "order_refunded": REFUNDED,
    "order_cancelled": CANCELLED,
}
_COMPLAINT_KINDS: Final = {
    "complaint_opened": OPENED,
    "complaint_escalated": ESCALATED,
    "complaint_resolved": RESOLVED,
}
_INTERACTION_SLOTS: Final = {
    "page_view": I_VISIT,
    "app_open": I_VISIT,
    "site_visit": I_SITE_STORE,
    "store_visit": I_SITE_STORE,
    "inbound_call": I_CALL,
    "inquiry": I_INQUIRY,
    "purchase_inquiry": I_INQUIRY,
    "price_inquiry": I_PRICE,
    "email_open": I_OTHER,
    "email_click": I_OTHER,
    "support_chat": I_OTHER,
    "survey_response": I_OTHER,
}
_SEVERITY: Final = {"low": 0, "medium": 1, "high": 2}
# Interaction slots behind an intent indicator (I_PRICE and I_OTHER feed engagement only).
_INDICATOR_SLOTS: Final = frozenset((I_VISIT, I_SITE_STORE, I_CALL, I_INQUIRY))


@dataclass(slots=True)
class Result:
    """What `apply` did: outputs to send, or why the event was refused.

    `changed`: the event was accepted, so the state was mutated (persist it) and the
    snapshot differs from the one before the call (seq grew by one; `revision` moved).
    False exactly when nothing changed at all: a rejection, or a duplicate (not a
    rejection: no outputs, `duplicate` is True). Snapshot changes are never hidden: an
    accepted event always bumps seq, so a consumer ordering by (as_of, seq) sees it.
    """

    outputs: list[dict[str, Any]]
    rejection: Rejection | None
    changed: bool
    duplicate: bool

    # Written out (dataclass would generate it) so that mypyc compiles it: the generated
    # one ran as interpreted Python, with a kwargs dict, once per event.
    def __init__(
        self,
        outputs: list[dict[str, Any]] | None = None,
        rejection: Rejection | None = None,
        changed: bool = False,
        duplicate: bool = False,
    ) -> None:
        self.outputs = [] if outputs is None else outputs
        self.rejection = rejection
        self.changed = changed
        self.duplicate = duplicate


def _refuse(code: str, message: str) -> Result:
    return Result(rejection=Rejection(code, message))


def event_cause(event: dict[str, Any]) -> dict[str, Any]:
    """The cause of the outputs an event brought about."""
    return {"kind": "event", "event_type": event["type"], "event_id": event["event_id"]}


def outputs(
    s: CustomerState, t: int, trans: list[Transition], cause: dict[str, Any], c: CompiledPolicy
) -> list[dict[str, Any]]:
    """The output events of transitions `trans` at ``t``, of `s` as of ``t``."""
    snapshot = reasons = held = None
    for tr in trans:
        if tr.type == TIER_CHANGED:
            snapshot = build_snapshot(s, t, c)
        elif tr.type == CHURN_RISK_CHANGED:
            reasons = churn_reasons(s, t, c)
        elif tr.type == TIER_WARNING:
            held = held_block(s, c.tier_rank[tr.previous], c)
    return output_events(s.customer_id, t, trans, cause, c, snapshot, reasons, held)


def output_events(
    customer_id: str,
    t: int,
    trans: list[Transition],
    cause: dict[str, Any],
    c: CompiledPolicy,
    snapshot: dict[str, Any] | None,
    reasons: list[dict[str, str]] | None,
    held: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """`outputs` given what they quote: the snapshot at ``t`` (for a tier change),
    churn's reasons at ``t`` (for a churn-risk change) and the held tier's progress (for
    a tier warning: `tier_progress.held_block`)."""
    at = format_rfc3339(t)
    key_tail = "\x1f".join(
        (cause["kind"], cause.get("event_type", ""), cause.get("event_id", ""), at, c.version)
    )
    out: list[dict[str, Any]] = []
    for tr in trans:
        digest = hashlib.blake2b(
            f"{customer_id}\x1f{tr.type}\x1f{key_tail}".encode(), digest_size=16
        ).hexdigest()
        o: dict[str, Any] = {
            "event_id": digest,
            "type": tr.type,
            "customer_id": customer_id,
            "occurred_at": at,
            "policy_version": c.version,
            "cause": cause,
        }
        if tr.type == TIER_CHANGED:
            o["previous_tier"], o["tier"], o["direction"] = tr.previous, tr.current, tr.extra
            o["snapshot"] = snapshot
        elif tr.type == CHURN_RISK_CHANGED:
            o["score"], o["band"], o["previous_band"] = tr.score, tr.current, tr.previous
            o["band_before"] = tr.before
            o["alert"] = tr.extra
            o["reasons"] = reasons
        elif tr.type == TIER_WARNING:
            o.update(held or {})  # tier, downgrade_at, downgrade_to, needs
        else:
            o["previous_stage"], o["stage"] = tr.previous, tr.current
        out.append(o)
    return out


def _advance(s: CustomerState, now: int, c: CompiledPolicy) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def emit(t: int, trans: list[Transition]) -> None:
        out.extend(outputs(s, t, trans, {"kind": "inactivity"}, c))

    roll(s, now, c, emit)
    return out


def _remember(s: CustomerState, event_id: str, ts: int, c: CompiledPolicy) -> None:
    """Remember an event id; at the cap, forget the oldest half and raise the floor past them.

    Anything at or before the newest forgotten time is then refused as too_late, so a
    forgotten id can never be applied twice.
    """
    seen = s.seen
    seen[event_id] = ts
    floor = s.as_of - c.lateness_s
    # Insertion order is roughly time order: when the first id is stale, sweep them all
    # (an O(1) check per event keeps quiet customers' states small between due times).
    stale = len(seen) > c.dedup_max
    if not stale:
        for oldest in seen.values():  # the first value, read by a compiled loop
            stale = oldest < floor
            break
    if stale:
        for k in [k for k, t in seen.items() if t < floor]:
            del seen[k]
    if len(seen) <= c.dedup_max:
        return
    items = sorted(seen.items(), key=lambda kv: (kv[1], kv[0]))
    cut = items[len(items) // 2 - 1][1]
    for k, t in items:
        if t > cut:
            break
        del seen[k]
    if s.dedup_floor is None or cut + 1 > s.dedup_floor:
        s.dedup_floor = cut + 1


def event_time(event: dict[str, Any]) -> int:
    """An event's occurred_at as int epoch seconds, exactly as `apply` reads it.

    >>> event_time({"occurred_at": "2024-05-01T09:00:00.9+02:00"})
    1714546800
    """
    return parse_rfc3339(event["occurred_at"])


def apply(
    state: CustomerState, event: dict[str, Any], policy: Policy, *, at: int | None = None
) -> Result:
    """Fold one validated input event into `state` (in place) and return the outputs.

    `at`: ``event_time(event)`` when the caller has read it already (replay does, for its
    stream time); it must be exactly that.

    Order of work: refuse what cannot be applied (bad time, other customer, duplicate,
    too late, unknown currency) without touching the state; advance to the event's time
    (time-caused outputs at their due times); fold the event; re-grade at
    as_of = max(as_of, event time); emit the transitions the event caused.
    """
    c = policy.compiled
    s = state
    try:
        etype = event["type"]
        event_id = event["event_id"]
        ts = parse_rfc3339(event["occurred_at"]) if at is None else at
    except (KeyError, TypeError, ValueError) as err:
        return _refuse("invalid_event", f"cannot read type/event_id/occurred_at: {err!r}")
    if event.get("customer_id") != s.customer_id:
        return _refuse(
            "customer_mismatch",
            f"customer_id {event.get('customer_id')!r} is not this state's {s.customer_id!r}",
        )
    if event_id in s.seen:
        return Result(duplicate=True)
    floor = s.as_of - c.lateness_s
    if s.dedup_floor is not None and s.dedup_floor > floor:
        floor = s.dedup_floor
    if ts < floor:
        return _refuse(
            "too_late",
            f"occurred_at {event['occurred_at']} is before this customer's lateness floor "
            f"{format_rfc3339(floor)}",
        )
    # Read and check everything the fold needs before mutating anything.
    okind = _ORDER_KINDS.get(etype)
    slot = ckind = -1
    try:
        if okind is not None:
            currency = event["currency"]
            rate = c.rates.get(currency)
            if rate is None:
                return _refuse(
                    "unknown_currency",
                    f"currency: {currency!r} has no rate to {c.base} in policy {c.version}",
                )
            amount = event["amount"]
            cents = round(amount * rate * 100)
            order_id = event["order_id"]
            discount = event.get("discount") or 0
            paid = amount + discount
            # A free order (amount 0) shows no tolerance for the price, whatever its discount.
            full_price = (
                okind == PLACED and amount > 0 and discount / paid <= c.full_price_max_discount
            )
        elif etype in _INTERACTION_SLOTS:
            slot = _INTERACTION_SLOTS[etype]
        elif etype in _COMPLAINT_KINDS:
            ckind = _COMPLAINT_KINDS[etype]
            complaint_id = event["complaint_id"]
            severity = _SEVERITY[event["severity"]]
            billing = event.get("category") == "billing"
        else:
            return _refuse("unknown_type", f"type: {etype!r} is not an input event type")
    except (KeyError, TypeError, ValueError) as err:
        return _refuse("invalid_event", f"{etype}: missing or malformed field {err!r}")

    out = _adopt_policy(s, policy, c)
    if ts > s.as_of:
        if s.due is not None and s.due <= ts:
            out.extend(_advance(s, ts, c))
        move_to(s, ts)
    _remember(s, event_id, ts, c)
    s.seq += 1
    t = s.as_of
    due = s.due
    # s.due stays a lower bound: the old one covers every part the event leaves alone.
    if okind is not None:
        # Refunds, cancellations and a re-placed order_id (a correction) may take away the
        # spend a tier stood on: such a fall is at once. A new order can only raise it.
        takes = okind != PLACED or order_id in s.orders
        q_before = qualifying_tier(s, c) if takes else 0
        fold_order(s, okind, order_id, ts, cents, full_price, c)
        at_once = takes and qualifying_tier(s, c) < q_before
        trans, parts = settle(s, t, c, EVENT, at_once=at_once)
        due = min_due(due, order_times_due(s, c))
        expiry = order_day_due(ts // 86_400, c)
        due = min_due(due, expiry if expiry > t else None)
        # Spend moves the ability to pay; a full-price order is an intent indicator.
        due = min_due(due, intent_grade_due(s, c))
        due = _churn_due(s, c, parts, due)
    elif slot >= 0:
        day = fold_interaction(s, slot, ts, c)
        if etype == "survey_response":
            fold_survey(s, ts, event.get("nps", -1), event.get("csat", -1), event.get("ces", -1))
            trans, parts = settle(s, t, c, EVENT, orders=False)
            due = min_due(due, complaints_due(s, c))
            due = min_due(due, intent_grade_due(s, c))
            due = _churn_due(s, c, parts, due)
        else:
            # An interaction moves churn only through engagement: when engagement cannot
            # move the band (this depends on recency and the other components only, which
            # an interaction leaves alone), the old due still covers churn.
            light = churn_core(s, t, c, engagement=False)
            if engagement_sensitive(light, c):
                parts = with_engagement(light, s, t, c)
                trans, _ = settle(s, t, c, EVENT, orders=False, parts=parts)
                # _churn_due for parts known to be engagement-sensitive.
                due = min_due(due, holds_due(s, c))
                due = min_due(due, band_due(s, c, parts, due))
            else:
                trans = []
            if slot in _INDICATOR_SLOTS and day is not None:
                # An indicator falls back when a day leaves the window: never before the
                # oldest day does. When the due is earlier already, skip the scan; and
                # unless this unit brought an indicator to A, the due cannot come earlier.
                floor = (oldest_day(s.idays) + c.intent_days) * 86_400
                if (due is None or due > floor) and indicator_reached(s, slot, day, c):
                    due = min_due(due, intent_grade_due(s, c))
    else:
        fold_complaint(s, ckind, complaint_id, ts, severity, billing, c)
        trans, parts = settle(s, t, c, EVENT, orders=False)
        due = min_due(due, complaints_due(s, c))
        due = min_due(due, intent_grade_due(s, c))
        due = _churn_due(s, c, parts, due)
    s.due = due
    if trans:
        out.extend(outputs(s, t, trans, event_cause(event), c))
    return Result(outputs=out, changed=True)


def _churn_due(
    s: CustomerState, c: CompiledPolicy, parts: ChurnCore | None, due: int | None
) -> int | None:
    """`due` lowered to the next band change by time and the end of any hold (tier grace,
    alert cooldown), after an event re-graded churn at ``s.as_of``."""
    due = min_due(due, holds_due(s, c))
    if parts is None:
        parts = churn_core(s, s.as_of, c)
    if engagement_sensitive(parts, c):
        return min_due(due, band_due(s, c, parts, due))
    return min_due(due, churn_due(s, c, parts, due, worst_engagement=True))


def _adopt_policy(state: CustomerState, policy: Policy, c: CompiledPolicy) -> list[dict[str, Any]]:
    """Bring a state graded under another policy_version to `policy` (`c` is its
    `compiled`, which the caller has read), in place: a new state just takes its version;
    an old one is re-graded (cause policy_change)."""
    if state.policy_version == c.version:
        return []
    if not state.policy_version:
        state.policy_version = c.version
        return []
    return list(regrade_for_policy(state, state.as_of, policy))


def advance(state: CustomerState, now: int, policy: Policy) -> list[dict[str, Any]]:
    """Let time pass to ``now`` (in place): re-grade at each due time <= now in turn.

    Outputs carry the due time as occurred_at and cause kind "inactivity". ``as_of`` ends
    at the last due time processed (unchanged when none was due: ``state.due`` is a lower
    bound, so a wake-up may process nothing; ``state.due`` is then refreshed to the exact
    next due). So the state and its snapshot depend on the events alone, never on when
    sweeps run; for the grade at an arbitrary ``now`` use `grading.grade` (pure).

    Whether the snapshot changed: compare `revision(state)` before and after, i.e.
    ``(as_of, seq)``; the state must be persisted when that or ``state.due`` moved.
    """
    c = policy.compiled
    out = _adopt_policy(state, policy, c)
    out.extend(_advance(state, now, c))
    return out


def revision(state: CustomerState) -> tuple[int, int]:
    """``(as_of, seq)``: the snapshot (`snapshot`) changes exactly when this does.

    Every snapshot field is a function of the state at as_of; the state changes only by
    an accepted event (seq + 1), a policy re-grade (seq + 1) or a processed due time (as_of
    moves to it). A call that leaves this unchanged changed nothing a snapshot shows, and
    the worker need not publish one (it may still have refreshed ``state.due``).
    """
    return state.as_of, state.seq


def regrade_for_policy(state: CustomerState, now: int, policy: Policy) -> list[dict[str, Any]]:
    """Re-grade under a (new) policy at max(as_of, now), in place; cause "policy_change".

    Held grades move at once (no tier grace), since the rules, not the customer, changed.
    Time between as_of and now is not walked under the old policy: call `advance` with the
    old policy first if that matters.
    """
    c = policy.compiled
    trans = regrade(state, now, c)
    return outputs(state, state.as_of, trans, {"kind": "policy_change"}, c)


def snapshot(state: CustomerState, policy: Policy) -> dict[str, Any]:
    """The grade snapshot at state.as_of (what the customer-grades topic carries)."""
    return build_snapshot(state, state.as_of, policy.compiled)


def recompute_due(state: CustomerState, policy: Policy) -> int | None:
    """Set and return the exact due time (apply keeps a cheaper lower bound)."""
    state.due = next_due_c(state, policy.compiled)
    return state.due
