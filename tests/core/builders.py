"""Event builders and a tiny driver for the core tests (times are epoch seconds)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from streams.core.engine import advance, apply, new_state
from streams.core.policy import Policy
from streams.core.state import CustomerState
from streams.core.timefmt import format_rfc3339

DAY = 86_400
T0 = 1_704_067_200  # 2024-01-01T00:00:00Z, a Monday at midnight UTC
CID = "cust-1"

Event = dict[str, Any]


def order(
    eid: str,
    t: int,
    amount: float,
    *,
    oid: str | None = None,
    kind: str = "order_placed",
    currency: str = "USD",
    discount: float | None = None,
    cid: str = CID,
) -> Event:
    ev: Event = {
        "event_id": eid,
        "customer_id": cid,
        "occurred_at": format_rfc3339(t),
        "type": kind,
        "order_id": oid or f"o-{eid}",
        "amount": amount,
        "currency": currency,
    }
    if discount is not None:
        ev["discount"] = discount
    return ev


def interaction(eid: str, t: int, kind: str, *, cid: str = CID, **survey: int) -> Event:
    return {
        "event_id": eid,
        "customer_id": cid,
        "occurred_at": format_rfc3339(t),
        "type": kind,
        **survey,
    }


def complaint(
    eid: str,
    t: int,
    kind: str,
    complaint_id: str,
    severity: str = "medium",
    category: str = "delivery",
    *,
    cid: str = CID,
) -> Event:
    return {
        "event_id": eid,
        "customer_id": cid,
        "occurred_at": format_rfc3339(t),
        "type": kind,
        "complaint_id": complaint_id,
        "category": category,
        "severity": severity,
    }


def run(
    events: Iterable[Event], policy: Policy, until: int | None = None, cid: str = CID
) -> tuple[CustomerState, list[Event]]:
    """Apply events in order (asserting none is refused), then advance to `until`."""
    s = new_state(cid)
    out: list[Event] = []
    for ev in events:
        r = apply(s, ev, policy)
        assert r.rejection is None, r.rejection
        out.extend(r.outputs)
    if until is not None:
        out.extend(advance(s, until, policy))
    return s, out


def kinds(outputs: list[Event]) -> list[tuple[str, str, str]]:
    """(type, new value, occurred_at) of each output, for compact assertions."""
    res = []
    for o in outputs:
        new = o.get("tier") or o.get("stage") or o.get("band")
        res.append((o["type"], str(new), o["occurred_at"]))
    return res


def at(t: int) -> str:
    return format_rfc3339(t)
