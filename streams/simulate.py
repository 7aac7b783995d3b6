"""A seeded, realistic synthetic event stream for the three input topics.

The model (docs/contracts.md has the long form):

* Customers differ. Purchase rates are gamma-distributed (most buy a few times a year, a
  long tail buys often), order values are lognormal around a per-customer median, and a
  few big spenders order in the thousands, so the tier ladder (regular, silver, gold) is
  reached. Some customers never order (prospects); some join during the period.
* Customers lapse: each has an exponentially distributed lifetime, shortened by severe
  complaints. After lapsing they stop ordering and complaining and rarely interact.
* Orders are sometimes cancelled (within hours) or refunded (days later, in full or in
  part); a minority of customers pay in EUR or GBP and send local-time offsets.
* Complainers open complaints (with free text) that may escalate and mostly resolve.
  Surveys follow some orders, with scores driven by the customer's satisfaction.
  Interactions of every type arrive, with buying intent clustering before orders.
* Delivery faults: duplicates (the same bytes re-sent), late events (sent hours or days
  after they occurred) and malformed records (truncated, wrong types, unknown type,
  not UTF-8, not an object, a key that disagrees with the body), at configurable rates.

It is a discrete-event simulation: one heap of due actions, so memory is bounded by the
number of customers, not events, and records come out in roughly event-time order (late
ones by the time they are sent). One `random.Random(seed)` drives everything and the
default start is fixed, so a seed gives the same bytes on every machine and run. Who the
customers are and what their events draw from is in `simulated_customers`; how a record is
broken, in `simulated_faults`.
"""

from __future__ import annotations

import heapq
import math
import random
from bisect import bisect
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from math import log
from pathlib import Path
from typing import Any, Final, NamedTuple

import orjson

from streams.simulated_customers import (
    CATEGORIES,
    CHANNELS,
    CUM_CATEGORIES,
    CUM_INTERACTIONS,
    INTENT,
    INTERACTION_TYPES,
    SEVERITIES,
    TEXTS,
    Customer,
    draw_customer,
    lapse_scale,
    order_follow_up,
    prepared,
    survey,
)
from streams.simulated_faults import corrupt

__all__ = ["DEFAULT_START", "SimConfig", "SimRecord", "generate", "write_jsonl"]

DEFAULT_START: Final = datetime(2024, 1, 1, tzinfo=UTC)

_DAY: Final = 86400.0
_HOUR: Final = 3600.0


class SimRecord(NamedTuple):
    """One Kafka record: its topic, key (None when the producer sent none) and value."""

    topic: str
    key: bytes | None
    value: bytes


@dataclass(frozen=True, slots=True)
class SimConfig:
    """The simulator's knobs; the defaults give a plausible mid-size retailer.

    Rates named `*_rate` are probabilities per record (faults), per order (refund,
    cancel, survey) or per customer (the customer mix).
    """

    # Delivery faults, per record sent.
    malformed_rate: float = 0.005
    duplicate_rate: float = 0.01
    late_rate: float = 0.02
    missing_key_rate: float = 0.01
    late_max_days: float = 3.0
    # False for a file, which has no key column: records carry no key, and the key fault
    # (a key that disagrees with the body) is replaced by faults visible in the body.
    keys: bool = True
    # Customer mix.
    orders_per_year: float = 4.0  # mean purchase rate of ordinary customers
    order_rate_shape: float = 1.2  # gamma shape: lower is more heterogeneous
    median_order: float = 60.0  # USD-ish, the median of per-customer median order values
    big_spender_rate: float = 0.01
    prospect_rate: float = 0.15  # never order, only interact
    joining_rate: float = 0.3  # join during the period rather than exist at its start
    lapse_per_year: float = 0.3  # chance an active customer lapses within a year
    foreign_currency_rate: float = 0.1  # pay in EUR or GBP
    complainer_rate: float = 0.08
    complaints_per_year: float = 8.0  # of a complainer
    interactions_per_year: float = 40.0
    # Per order.
    refund_rate: float = 0.04
    cancel_rate: float = 0.02
    survey_rate: float = 0.15

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, float) and (value < 0 or not math.isfinite(value)):
                raise ValueError(f"SimConfig.{name} must be a finite number >= 0, not {value}")
        fractions = ("malformed_rate", "duplicate_rate", "late_rate", "missing_key_rate")
        for name in fractions:
            if getattr(self, name) > 1:
                raise ValueError(f"SimConfig.{name} is a probability, not {getattr(self, name)}")
        # One draw picks at most one delivery fault per record, so their rates must fit in 1.
        if self.malformed_rate + self.duplicate_rate + self.late_rate > 1:
            raise ValueError("SimConfig: malformed_rate + duplicate_rate + late_rate > 1")


# Heap entry kinds.
_ORDER, _INTERACTION, _COMPLAINT, _EVENT, _SEND, _RESEND = range(6)


def generate(
    customers: int,
    days: int,
    seed: int,
    start: datetime | None = None,
    config: SimConfig | None = None,
    stats: dict[str, int] | None = None,
) -> Iterator[SimRecord]:
    """Yield the records of `customers` customers over `days` days, seeded.

    Every event occurs in [start, start + days). Records come in the order they are sent:
    by event time, except late ones. `stats`, if given, is filled with counts by fault
    kind ("sent", "duplicate", "late", "malformed", "malformed:<kind>", "no_key") and
    by topic as the iterator runs.
    """
    if customers < 0 or days < 0:
        raise ValueError("customers and days must be >= 0")
    start = DEFAULT_START if start is None else start
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    cfg = config or SimConfig()
    rng = random.Random(seed)  # noqa: S311 (synthetic data, reproducible by design)
    counts: dict[str, int] = {} if stats is None else stats
    return _Simulation(customers, days, start, cfg, rng, counts).records()


def write_jsonl(records: Iterable[SimRecord], path: str | Path) -> dict[str, int]:
    """Write each record's value as one line (the replay file format); keys are dropped.

    Returns counts: "lines", "bytes" and lines per topic. A malformed value never holds a
    newline (orjson escapes them in strings and the faults add none), so lines = records.
    """
    counts: dict[str, int] = {"lines": 0, "bytes": 0}
    lines = 0
    size = 0
    buffer: list[bytes] = []
    with Path(path).open("wb") as out:
        for topic, _, value in records:
            buffer.append(value)
            lines += 1
            size += len(value) + 1
            counts[topic] = counts.get(topic, 0) + 1
            if len(buffer) >= 4096:
                buffer.append(b"")
                out.write(b"\n".join(buffer))
                buffer.clear()
        if buffer:
            buffer.append(b"")
            out.write(b"\n".join(buffer))
    counts.update(lines=lines, bytes=size)
    return counts


# What an action makes: the topic, customer and body of the event that occurs now.
_Made = tuple[str, Customer, dict[str, Any]]
# NamedTuple's own constructor is Python code; tuple.__new__ builds the same in C.
_new_record: Any = tuple.__new__
# Whole-second stamps from tables: strftime costs microseconds, these a fraction of one.
_HHMM: Final = tuple(f"T{h:02d}:{m:02d}:" for h in range(24) for m in range(60))
_SS: Final = tuple(f"{s:02d}" for s in range(60))


class _Simulation:
    """One run: the random draws, the heap of due actions (time, sequence, kind, payload)
    and the counts. Each kind of action has a method that makes its event and schedules
    what follows from it; every draw comes from the one `rng`, in a fixed order."""

    def __init__(
        self,
        n_customers: int,
        days: int,
        start: datetime,
        cfg: SimConfig,
        rng: random.Random,
        counts: dict[str, int],
    ) -> None:
        self.n_customers = n_customers
        self.width = max(6, len(str(n_customers)))
        self.horizon = days * _DAY
        self.t0 = math.ceil(start.timestamp())  # whole seconds, never before start
        self.cfg = cfg
        self.rng = rng
        # Bound once: these run several times per event.
        self.rnd = rng.random
        self.expo = rng.expovariate
        self.uniform = rng.uniform
        self.getrandbits = rng.getrandbits
        self.counts = counts
        self.heap: list[tuple[float, int, int, Any]] = []
        self.seq = 0
        self.dates: dict[int, str] = {}
        self.n_orders = self.n_complaint_ids = 0
        self.n_sent = self.n_dup = self.n_late = self.n_bad = self.n_no_key = 0
        self.malformed_until = cfg.late_rate + cfg.malformed_rate
        self.duplicate_until = self.malformed_until + cfg.duplicate_rate
        self.missing_key_rate = cfg.missing_key_rate if cfg.keys else 1.0

    def records(self) -> Iterator[SimRecord]:
        """Every record, in the order it is sent; the counts are filled in at the end."""
        self._add_customers()
        heap, pop = self.heap, heapq.heappop
        occur: dict[int, Callable[[float, Any], _Made | None]] = {
            _INTERACTION: self._interaction,
            _ORDER: self._order,
            _COMPLAINT: self._complaint,
            _EVENT: self._prepared,
        }
        try:
            while heap:
                t, _, kind, payload = pop(heap)
                if kind >= _SEND:  # a record decided earlier (late, or a duplicate) goes out now
                    if kind == _RESEND:
                        self.n_dup += 1
                    self.n_sent += 1
                    yield payload
                    continue
                made = occur[kind](t, payload)
                if made is not None:
                    record = self._deliver(t, *made)
                    if record is not None:
                        self.n_sent += 1
                        yield record
        finally:
            # Also when the consumer stops early (islice, break): the generator is closed then.
            counts = self.counts
            counts.update(sent=self.n_sent, duplicate=self.n_dup, late=self.n_late)
            counts.update(malformed=self.n_bad)
            counts["no_key"] = self.n_no_key

    def _push(self, t: float, kind: int, payload: Any) -> None:
        heapq.heappush(self.heap, (t, self.seq, kind, payload))
        self.seq += 1

    def _stamp(self, t: float, c: Customer) -> str:
        local = self.t0 + int(t) + c.offset
        day = local // 86400
        iso = self.dates.get(day)
        if iso is None:
            iso = self.dates[day] = (date(1970, 1, 1) + timedelta(days=day)).isoformat()
        secs = local - day * 86400
        return iso + _HHMM[secs // 60] + _SS[secs % 60] + c.suffix

    def _pick(self, options: tuple[Any, ...]) -> Any:
        # random.choice goes through _randbelow; this is the same idea at a third the cost.
        return options[int(self.rnd() * len(options))]

    def _new_id(self) -> str:
        return f"{self.getrandbits(64):016x}"

    # ---- the customer mix

    def _add_customers(self) -> None:
        """Draw every customer and schedule their first order, interaction and complaint."""
        lapse = lapse_scale(self.cfg)
        for i in range(self.n_customers):
            c = Customer(f"cust-{i:0{self.width}d}")
            joined = draw_customer(c, self.cfg, self.rng, self.horizon, lapse)
            if c.order_rate:
                # A new customer joins to buy: the first order follows within days.
                first = joined + (self.expo(1 / (2 * _DAY)) if joined else self.expo(c.order_rate))
                self._push(first, _ORDER, c)
            if c.interaction_rate:
                self._push(joined + self.expo(c.interaction_rate), _INTERACTION, c)
            if c.complaint_rate:
                self._push(joined + self.expo(c.complaint_rate), _COMPLAINT, c)

    # ---- the actions: each makes the event that occurs at t and schedules what follows

    def _interaction(self, t: float, c: Customer) -> _Made | None:
        if t >= self.horizon:
            return None
        rnd = self.rnd
        event_type = INTERACTION_TYPES[bisect(CUM_INTERACTIONS, rnd() * CUM_INTERACTIONS[-1])]
        event = {
            "event_id": self._new_id(),
            "customer_id": c.cid,
            "occurred_at": self._stamp(t, c),
            "type": event_type,
            "channel": self._pick(CHANNELS[event_type]),
        }
        # A lapsed customer still opens the odd e-mail, much less often.
        rate = c.interaction_rate if t < c.lapse_at else c.interaction_rate * 0.15
        nxt = t - log(1.0 - rnd()) / rate  # expovariate(rate), without the call
        if nxt < self.horizon:
            self._push(nxt, _INTERACTION, c)
        return "interactions", c, event

    def _order(self, t: float, c: Customer) -> _Made | None:
        if t >= self.horizon or t >= c.lapse_at:
            return None
        rnd, uniform = self.rnd, self.uniform
        amount = c.median * self.rng.lognormvariate(0, c.sigma)
        if rnd() < 0.004:  # the odd big-ticket purchase (a sofa, a laptop)
            amount *= uniform(15, 60)
        amount = round(amount, 2)
        self.n_orders += 1
        channel = "store" if rnd() < 0.25 else ("app" if rnd() < 0.3 else "web")
        event = {
            "event_id": self._new_id(),
            "customer_id": c.cid,
            "occurred_at": self._stamp(t, c),
            "type": "order_placed",
            "order_id": f"ord-{self.n_orders}",
            "amount": amount,
            "currency": c.currency,
            "items": 1 + int(rnd() * rnd() * 6),
            "channel": channel,
        }
        if rnd() < 0.2:
            share = self._pick((0.05, 0.1, 0.2))
            event["discount"] = round(amount * share / (1 - share), 2)
        self._after_order(t, c, event, amount)
        self._next_order(t, c)
        return "orders", c, event

    def _after_order(self, t: float, c: Customer, placed: dict[str, Any], amount: float) -> None:
        """A cancellation or a refund, a survey, the odd delivery complaint."""
        rnd, uniform, cfg = self.rnd, self.uniform, self.cfg
        r = rnd()
        if r < cfg.cancel_rate:
            when = t + uniform(0.2 * _HOUR, 24 * _HOUR)
            follow = order_follow_up(placed, "order_cancelled", amount)
            self._push(when, _EVENT, ("orders", c, follow))
        elif r < cfg.cancel_rate + cfg.refund_rate:
            when = t + uniform(2 * _DAY, 30 * _DAY)
            part = amount if rnd() < 0.6 else round(amount * uniform(0.1, 0.9), 2)
            follow = order_follow_up(placed, "order_refunded", part)
            self._push(when, _EVENT, ("orders", c, follow))
        if rnd() < cfg.survey_rate:
            self._push(t + uniform(_DAY, 4 * _DAY), _EVENT, ("survey", c, None))
        if rnd() < 0.02:  # even happy customers complain about a delivery now and then
            self._push(t + uniform(_DAY, 6 * _DAY), _COMPLAINT, c)

    def _next_order(self, t: float, c: Customer) -> None:
        """The customer's next order, unless it falls past the horizon or their lapse."""
        nxt = t + self.expo(c.order_rate)
        if nxt >= self.horizon or nxt >= c.lapse_at:
            return
        self._push(nxt, _ORDER, c)
        if self.rnd() < 0.5:  # buying intent shows before the order
            lead = min(nxt - t, 3 * _DAY) * self.rnd()
            intent, channel = self._pick(INTENT)
            self._push(nxt - lead, _EVENT, ("interactions", c, prepared(c, intent, channel)))

    def _complaint(self, t: float, c: Customer) -> _Made | None:
        if t >= self.horizon or t >= c.lapse_at:
            return None
        rnd = self.rnd
        category = CATEGORIES[bisect(CUM_CATEGORIES, rnd() * CUM_CATEGORIES[-1])]
        r = rnd()
        severity = "low" if r < 0.5 else ("medium" if r < 0.85 else "high")
        self.n_complaint_ids += 1
        event = {
            "event_id": self._new_id(),
            "customer_id": c.cid,
            "occurred_at": self._stamp(t, c),
            "type": "complaint_opened",
            "complaint_id": f"cmp-{self.n_complaint_ids}",
            "category": category,
            "severity": severity,
            "text": self._pick(TEXTS[category]),
            "channel": self._pick(("email", "phone", "chat", "store")),
        }
        c.satisfaction = max(0.0, c.satisfaction - 0.15)
        if severity == "high" and rnd() < 0.3:
            c.lapse_at = min(c.lapse_at, t + self.expo(1 / (60 * _DAY)))
        self._after_complaint(t, c, event)
        if c.complaint_rate:
            nxt = t + self.expo(c.complaint_rate)
            if nxt < self.horizon:
                self._push(nxt, _COMPLAINT, c)
        return "complaints", c, event

    def _after_complaint(self, t: float, c: Customer, opened: dict[str, Any]) -> None:
        """An escalation, a resolution, a call or chat about it."""
        rnd, uniform = self.rnd, self.uniform
        when, severity = t, opened["severity"]
        if rnd() < 0.25:
            when += uniform(_DAY, 5 * _DAY)
            raised = SEVERITIES[min(2, SEVERITIES.index(severity) + 1)]
            follow = {**opened, "type": "complaint_escalated", "severity": raised}
            follow["text"] = "Still waiting for an answer."
            self._push(when, _EVENT, ("complaints", c, follow))
            severity = raised
        if rnd() < 0.85:
            when += uniform(_DAY, 14 * _DAY)
            follow = {**opened, "type": "complaint_resolved", "severity": severity}
            del follow["text"]
            self._push(when, _EVENT, ("complaints", c, follow))
        if rnd() < 0.5:
            contact, channel = self._pick((("inbound_call", "phone"), ("support_chat", "chat")))
            pre = prepared(c, contact, channel)
            self._push(t + uniform(60, 2 * _HOUR), _EVENT, ("interactions", c, pre))

    def _prepared(self, t: float, payload: tuple[str, Customer, Any]) -> _Made | None:
        """An event prepared earlier (a follow-up, a survey) that occurs now."""
        if t >= self.horizon:
            return None
        topic, c, event = payload
        if topic == "survey":
            topic = "interactions"
            event = survey(c, self.rnd, self.rng.gauss)
        event["event_id"] = self._new_id()
        event["occurred_at"] = self._stamp(t, c)
        return topic, c, event

    # ---- delivery

    def _deliver(
        self, t: float, topic: str, c: Customer, event: dict[str, Any]
    ) -> SimRecord | None:
        """The record of an event that occurs now, with the delivery fault one draw decides:
        late (None: it is sent later), malformed, duplicated, or none."""
        rnd = self.rnd
        value = orjson.dumps(event)
        if rnd() < self.missing_key_rate:
            key = None
            self.n_no_key += 1
        else:
            key = c.key
        record: SimRecord = _new_record(SimRecord, (topic, key, value))
        u = rnd()
        if u < self.cfg.late_rate:
            # Sent late: hours mostly, a few days at worst.
            late_days = self.cfg.late_max_days * _DAY
            delay = self.expo(1 / (6 * _HOUR)) if rnd() < 0.75 else self.uniform(_DAY, late_days)
            self.n_late += 1
            self._push(t + delay, _SEND, record)
            return None
        if u < self.malformed_until:
            fault, key, value = corrupt(
                key, value, self.rng, self.width, self.n_customers, self.cfg.keys
            )
            record = SimRecord(topic, key, value)
            self.counts[f"malformed:{fault}"] = self.counts.get(f"malformed:{fault}", 0) + 1
            self.n_bad += 1
        elif u < self.duplicate_until:
            # The producer retried: the same bytes again, seconds to minutes later.
            self._push(t + self.expo(1 / 30.0), _RESEND, record)
        return record
