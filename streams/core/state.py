"""Per-customer state: bounded whatever the history, and encoded to compact bytes.

Orders, interactions and complaints are kept as per-UTC-day buckets inside their windows
only; orders and complaints are remembered by id up to a cap (for refunds, cancellations
and resolutions); event ids are remembered within the lateness bound up to a cap. Times
are int epoch seconds (UTC), days are ``epoch // 86400``. See docs/grading.md for sizes.

>>> s = new_state("c-1")
>>> s.days[19800] = [1, 12_345]
>>> s.win_count, s.win_cents = 1, 12_345
>>> decode(encode(s)) == s
True
>>> len(encode(s))
118
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import orjson

__all__ = [
    "FORMAT",
    "I_CALL",
    "I_FULL_PRICE",
    "I_INQUIRY",
    "I_KINDS",
    "I_OTHER",
    "I_PRICE",
    "I_SITE_STORE",
    "I_TOTAL",
    "I_VISIT",
    "NO_TS",
    "CustomerState",
    "decode",
    "encode",
    "first_day",
    "new_state",
    "oldest_day",
]

# Bumped when the encoded layout changes; decode refuses other versions.
FORMAT: Final = 2
# "No time" inside record lists (order/complaint records), where None would cost a type.
NO_TS: Final = -(1 << 62)

# Interaction day bucket slots: what the intent indicators and engagement need, not raw types.
I_VISIT: Final = 0  # page_view, app_open
I_SITE_STORE: Final = 1  # site_visit, store_visit
I_CALL: Final = 2  # inbound_call
I_INQUIRY: Final = 3  # inquiry, purchase_inquiry
I_PRICE: Final = 4  # price_inquiry
I_OTHER: Final = 5  # email_open, email_click, support_chat, survey_response
I_FULL_PRICE: Final = 6  # orders placed at (near) full price: the price-tolerance signal
I_TOTAL: Final = 7  # all interactions of the day (slots 0-5 summed): engagement without a sum()
I_KINDS: Final = 8

# Order record slots: [placed_at, placed_cents, refunded_cents, cancelled, adj_day, cancel_cents]
O_TS: Final = 0
O_PLACED: Final = 1
O_REFUNDED: Final = 2
O_CANCELLED: Final = 3
O_ADJ_DAY: Final = 4
O_CANCEL: Final = 5
# Complaint record slots: [opened_at, severity, billing, escalated, resolved, last_seen,
# severity_at_opening]; the last is what the opened-complaint day buckets counted.
C_OPENED: Final = 0
C_SEVERITY: Final = 1
C_BILLING: Final = 2
C_ESCALATED: Final = 3
C_RESOLVED: Final = 4
C_SEEN: Final = 5
C_OPEN_SEV: Final = 6


@dataclass(slots=True, eq=True)
class CustomerState:
    """Everything the core knows of one customer. `apply`/`advance` mutate it in place."""

    customer_id: str
    # Time of the last grade; never goes backwards.
    as_of: int = 0
    # Revision: +1 for every accepted event and every policy re-grade.
    seq: int = 0
    # Earliest time the grade may change without an event (a lower bound; None: never).
    due: int | None = None
    # (seq, as_of, due) when `due` was last computed exactly (not encoded: None on decode,
    # so a decoded state's first wake-up recomputes it). Spares a wake-up the recomputation.
    exact_due: tuple[int, int, int | None] | None = field(default=None, compare=False)
    policy_version: str = ""
    # Orders: day -> [orders, net cents] for days inside the RFM window.
    days: dict[int, list[int]] = field(default_factory=dict)
    # Cached sums of `days` (rebuilt on decode, not encoded).
    win_count: int = 0
    win_cents: int = 0
    # order_id -> order record (see O_* slots); capped, oldest forgotten first.
    orders: dict[str, list[int]] = field(default_factory=dict)
    live_orders: int = 0  # placed and not cancelled, ever
    first_order: int | None = None
    last_order: int | None = None
    # Bounds of live orders no longer tracked by id (so a cancellation can recompute first/last).
    untracked_first: int | None = None
    untracked_last: int | None = None
    reactivated_at: int | None = None
    # Interactions: day -> counts per I_* slot, for days inside the intent window, kept in
    # ascending day order (`folding.iday_bucket`), so that the window's walks need no sort
    # and its oldest day is the first key. A tuple, not a list: its counts sit in the one
    # allocation, so a walk over the window reads one object per day, not two (the walks
    # are memory-bound once states outgrow the caches); an event replaces its day's tuple.
    idays: dict[int, tuple[int, ...]] = field(default_factory=dict)
    # complaint_id -> complaint record (see C_* slots); capped.
    complaints: dict[str, list[int]] = field(default_factory=dict)
    # Complaints opened: day -> [low, medium, high] inside the complaint window.
    cdays: dict[int, list[int]] = field(default_factory=dict)
    # Each survey metric's latest answer, on its own: [nps_at, nps, csat_at, csat, ces_at,
    # ces] (NO_TS, -1 = never answered), or None before any score. The answers are kept
    # as the event carried them: a JSON integer may come as 3.0 (the schema accepts it),
    # and compiled code must neither refuse nor convert it.
    survey: list[int | float] | None = None
    # Held grades and their hysteresis.
    # Tier and band by name ("" = the policy's lowest), so a new policy's ladder can't
    # misread them; stage is an index into the fixed LIFECYCLE_STAGES.
    tier: str = ""
    below_since: int | None = None
    stage: int = 0
    band: str = ""
    alerted: bool = False
    alert_band: str = ""
    last_alert: int | None = None
    # De-duplication: event_id -> occurred_at, within the lateness bound; events older
    # than dedup_floor are refused (raised when ids had to be forgotten).
    seen: dict[str, int] = field(default_factory=dict)
    dedup_floor: int | None = None


# Shared copies of the values that fill every state's day buckets: day numbers (above
# the interpreter's small ints, so each would be an object of its own) and interaction
# count rows (a few hundred distinct ones). States are scattered over the heap, and the
# walks over their buckets are memory-bound: shared, these stay in the CPU's caches
# (docs/grading.md, "Compiled core"). A memo that never changes a result (an interned
# value equals the one given), bounded so it cannot grow with the input. Typed `Any`
# where a day is the key object itself: compiled code keeps an `int` unboxed and boxes a
# new object where it needs one.
_SHARED_MAX: Final = 1 << 16
_DAYS: Final[dict[Any, Any]] = {}
_COUNTS: Final[dict[Any, Any]] = {}


def _shared(table: dict[Any, Any], value: Any) -> Any:
    """`value`, or the equal object already in `table` (kept there while it has room)."""
    got = table.get(value)
    if got is not None:
        return got
    if len(table) < _SHARED_MAX:
        table[value] = value
    return value


def put_bucket(buckets: dict[Any, Any], day: int, bucket: Any) -> None:
    """``buckets[day] = bucket`` with the shared object of `day` as the key (a dict keeps
    its first key object, so later writes to the bucket keep it shared)."""
    buckets[_shared(_DAYS, day)] = bucket


def shared_counts(counts: tuple[int, ...]) -> tuple[int, ...]:
    """`counts`, or the equal tuple already shared."""
    shared: tuple[int, ...] = _shared(_COUNTS, counts)
    return shared


def new_state(customer_id: str) -> CustomerState:
    """A customer never seen before: a prospect at the lowest tier and band."""
    return CustomerState(customer_id=customer_id)


def first_day(days: dict[int, list[int]]) -> int:
    """``min(days)`` of day buckets (ValueError when empty, as min's), as a compiled loop:
    min() is a generic call comparing boxed ints, several times the cost per bucket.

    >>> first_day({19_802: [1], 19_800: [2], 19_801: [3]})
    19800
    """
    if not days:
        raise ValueError("min() arg is an empty sequence")
    first = 0
    seen = False
    for d in days:
        if not seen or d < first:
            first = d
            seen = True
    return first


def oldest_day(days: dict[int, tuple[int, ...]]) -> int:
    """The first key of day buckets kept in ascending order (`idays`): their oldest day,
    without a walk (ValueError when empty, as `first_day`).

    >>> oldest_day({19_800: (2,), 19_801: (3,)})
    19800
    """
    for d in days:
        return d
    raise ValueError("no day buckets")


def _flat(d: dict[int, list[int]] | dict[int, tuple[int, ...]]) -> list[list[int]]:
    return [[k, *v] for k, v in d.items()]


def _unflat(rows: list[list[int]]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for r in rows:
        put_bucket(out, r[0], r[1:])
    return out


def _unflat_idays(rows: list[list[int]]) -> dict[int, tuple[int, ...]]:
    """`idays` from its rows, in ascending day order (states encoded before `idays` was
    kept sorted may list a late day after later ones)."""
    out: dict[int, tuple[int, ...]] = {}
    for r in sorted(rows):
        put_bucket(out, r[0], shared_counts(tuple(r[1:])))
    return out


def _survey(v: list[int | float] | None) -> list[int | float] | None:
    """The per-metric survey list; states encoded with one answer for all three metrics,
    [answered_at, nps, csat, ces], give each answered metric that time."""
    if v is None or len(v) == 6:
        return v
    at = v[0]
    out: list[int | float] = []
    for value in v[1:]:
        out += [at if value != -1 else NO_TS, value]
    return out


def encode(s: CustomerState) -> bytes:
    """Compact bytes: an orjson array of the fields in a fixed order (no field names)."""
    return orjson.dumps(
        (
            FORMAT,
            s.customer_id,
            s.as_of,
            s.seq,
            s.due,
            s.policy_version,
            _flat(s.days),
            s.orders,
            s.live_orders,
            s.first_order,
            s.last_order,
            s.untracked_first,
            s.untracked_last,
            s.reactivated_at,
            _flat(s.idays),
            s.complaints,
            _flat(s.cdays),
            s.survey,
            s.tier,
            s.below_since,
            s.stage,
            s.band,
            s.alerted,
            s.alert_band,
            s.last_alert,
            s.seen,
            s.dedup_floor,
        )
    )


def decode(data: bytes) -> CustomerState:
    """The inverse of `encode`; raises ValueError on bytes of another format."""
    v: list[Any] = orjson.loads(data)
    if not isinstance(v, list) or not v or v[0] != FORMAT or len(v) != 27:
        raise ValueError(f"not an encoded CustomerState of format {FORMAT}")
    days = _unflat(v[6])
    return CustomerState(
        customer_id=v[1],
        as_of=v[2],
        seq=v[3],
        due=v[4],
        policy_version=v[5],
        days=days,
        win_count=sum(b[0] for b in days.values()),
        win_cents=sum(b[1] for b in days.values()),
        orders=v[7],
        live_orders=v[8],
        first_order=v[9],
        last_order=v[10],
        untracked_first=v[11],
        untracked_last=v[12],
        reactivated_at=v[13],
        idays=_unflat_idays(v[14]),
        complaints=v[15],
        cdays=_unflat(v[16]),
        survey=_survey(v[17]),
        tier=v[18],
        below_since=v[19],
        stage=v[20],
        band=v[21],
        alerted=v[22],
        alert_band=v[23],
        last_alert=v[24],
        seen=v[25],
        dedup_floor=v[26],
    )
