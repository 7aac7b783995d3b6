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
default start is fixed, so a seed gives the same bytes on every machine and run.
"""

from __future__ import annotations

import heapq
import math
import random
from bisect import bisect
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from math import log
from pathlib import Path
from typing import Any, Final, NamedTuple

import orjson

__all__ = ["DEFAULT_START", "SimConfig", "SimRecord", "generate", "write_jsonl"]

DEFAULT_START: Final = datetime(2024, 1, 1, tzinfo=UTC)

_DAY: Final = 86400.0
_HOUR: Final = 3600.0
_YEAR: Final = 365.0 * _DAY


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


_INTERACTIONS: Final = (
    # (type, weight, channels)
    ("page_view", 34, ("web", "app")),
    ("site_visit", 12, ("web",)),
    ("app_open", 12, ("app",)),
    ("email_open", 14, ("email",)),
    ("email_click", 5, ("email",)),
    ("store_visit", 5, ("store",)),
    ("inquiry", 4, ("web", "phone", "store")),
    ("purchase_inquiry", 3, ("web", "phone", "store")),
    ("price_inquiry", 3, ("web", "phone")),
    ("inbound_call", 4, ("phone",)),
    ("support_chat", 4, ("chat",)),
)
_INTENT: Final = (("purchase_inquiry", "web"), ("price_inquiry", "web"), ("site_visit", "web"))
_CATEGORIES: Final = ("delivery", "quality", "billing", "service", "product", "other")
_CATEGORY_WEIGHTS: Final = (35, 20, 15, 15, 10, 5)
_TEXTS: Final = {
    "delivery": ("Parcel arrived a week late.", "Box was crushed in transit.", "Never got it."),
    "quality": ("Stitching came apart after one wash.", "Not as pictured.", "Arrived broken."),
    "billing": ("I was charged twice.", "Refund still not on my card.", "Wrong VAT on invoice."),
    "service": ("Waited 40 minutes on hold.", "Agent hung up on me.", "No reply to my e-mail."),
    "product": ("Battery dies within an hour.", "Size chart is wrong.", "Missing parts."),
    "other": ("Too many marketing e-mails.", "Can't delete my account.", "Website keeps crashing."),
}
_SEVERITIES: Final = ("low", "medium", "high")
# Offsets producers put on timestamps, by currency: (seconds east of UTC, suffix).
_OFFSETS: Final = {
    "USD": ((0, "Z"), (0, "Z"), (-5 * 3600, "-05:00"), (-8 * 3600, "-08:00")),
    "EUR": ((3600, "+01:00"), (0, "Z")),
    "GBP": ((0, "Z"), (0, "+00:00")),
}
_UNKNOWN_TYPES: Final = ("order_teleported", "page_scrolled", "complaint_reopened", "ORDER_PLACED")

# Heap entry kinds.
_ORDER, _INTERACTION, _COMPLAINT, _EVENT, _SEND, _RESEND = range(6)


class _Customer:
    __slots__ = (
        "cid",
        "complaint_rate",
        "currency",
        "interaction_rate",
        "key",
        "lapse_at",
        "median",
        "offset",
        "order_rate",
        "satisfaction",
        "sigma",
        "suffix",
    )

    def __init__(self, cid: str) -> None:
        self.cid = cid
        self.key = cid.encode()
        self.order_rate = 0.0  # per second
        self.interaction_rate = 0.0
        self.complaint_rate = 0.0
        self.median = 0.0
        self.sigma = 0.5
        self.currency = "USD"
        self.offset = 0
        self.suffix = "Z"
        self.lapse_at = math.inf
        self.satisfaction = 0.8


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
    return _run(customers, days, start, cfg, rng, counts)


def _run(
    n_customers: int,
    days: int,
    start: datetime,
    cfg: SimConfig,
    rng: random.Random,
    counts: dict[str, int],
) -> Iterator[SimRecord]:
    horizon = days * _DAY
    t0 = math.ceil(start.timestamp())  # whole seconds, never before start
    rnd = rng.random
    expo = rng.expovariate
    uniform = rng.uniform
    choice = rng.choice
    lognorm = rng.lognormvariate
    getrandbits = rng.getrandbits
    push = heapq.heappush
    pop = heapq.heappop
    dumps = orjson.dumps
    heap: list[tuple[float, int, int, Any]] = []
    seq = 0
    dates: dict[int, str] = {}

    # strftime costs microseconds; whole-second stamps from tables cost a fraction of one.
    hhmm = [f"T{h:02d}:{m:02d}:" for h in range(24) for m in range(60)]
    ss = [f"{s:02d}" for s in range(60)]

    def stamp(t: float, c: _Customer) -> str:
        local = t0 + int(t) + c.offset
        day = local // 86400
        iso = dates.get(day)
        if iso is None:
            iso = dates[day] = (date(1970, 1, 1) + timedelta(days=day)).isoformat()
        secs = local - day * 86400
        return iso + hhmm[secs // 60] + ss[secs % 60] + c.suffix

    def pick(options: tuple[Any, ...]) -> Any:
        # random.choice goes through _randbelow; this is the same idea at a third the cost.
        return options[int(rnd() * len(options))]

    # ---- the customer mix
    lapse_scale = _YEAR / -math.log(1 - min(cfg.lapse_per_year, 0.999)) if cfg.lapse_per_year else 0
    width = max(6, len(str(n_customers)))
    shape = cfg.order_rate_shape or 1.0
    for i in range(n_customers):
        c = _Customer(f"cust-{i:0{width}d}")
        joined = uniform(0, horizon) if rnd() < cfg.joining_rate else 0.0
        if rnd() < cfg.foreign_currency_rate:
            c.currency = "EUR" if rnd() < 0.6 else "GBP"
        c.offset, c.suffix = choice(_OFFSETS[c.currency])
        if rnd() < cfg.big_spender_rate:
            per_year = uniform(12, 30)
            c.median = uniform(2500, 6000)
            c.sigma = 0.35
        elif rnd() < cfg.prospect_rate:
            per_year = 0.0
        else:
            per_year = rng.gammavariate(shape, cfg.orders_per_year / shape)
            c.median = cfg.median_order * lognorm(0, 0.8)
        c.order_rate = per_year / _YEAR
        engagement = 0.5 + min(per_year, 20) / 10
        c.interaction_rate = cfg.interactions_per_year * engagement * lognorm(0, 0.6) / _YEAR
        if rnd() < cfg.complainer_rate:
            c.complaint_rate = cfg.complaints_per_year * lognorm(0, 0.5) / _YEAR
            c.satisfaction = uniform(0.1, 0.6)
        else:
            c.satisfaction = uniform(0.5, 1.0)
        c.lapse_at = joined + expo(1 / lapse_scale) if lapse_scale else math.inf
        if c.order_rate:
            # A new customer joins to buy: the first order follows within days.
            first = joined + (expo(1 / (2 * _DAY)) if joined else expo(c.order_rate))
            push(heap, (first, seq, _ORDER, c))
            seq += 1
        if c.interaction_rate:
            push(heap, (joined + expo(c.interaction_rate), seq, _INTERACTION, c))
            seq += 1
        if c.complaint_rate:
            push(heap, (joined + expo(c.complaint_rate), seq, _COMPLAINT, c))
            seq += 1

    late_rate = cfg.late_rate
    malformed_until = late_rate + cfg.malformed_rate
    duplicate_until = malformed_until + cfg.duplicate_rate
    # NamedTuple's own constructor is Python code; tuple.__new__ builds the same in C.
    new_record: Any = tuple.__new__
    missing_key_rate = cfg.missing_key_rate if cfg.keys else 1.0
    late_days = cfg.late_max_days * _DAY
    n_sent = n_dup = n_late = n_bad = n_no_key = 0
    n_orders = n_complaint_ids = 0
    types, type_weights = zip(*((t, w) for t, w, _ in _INTERACTIONS), strict=True)
    channels = {t: ch for t, _, ch in _INTERACTIONS}
    cum_types = _cumulative(type_weights)
    cum_categories = _cumulative(_CATEGORY_WEIGHTS)
    total_types, total_categories = cum_types[-1], cum_categories[-1]

    event: dict[str, Any]
    try:
        while heap:
            t, _, kind, payload = pop(heap)
            # Build the event that occurs now (t), and schedule what follows from it.
            if kind == _INTERACTION:  # the most frequent, so tested first
                c = payload
                if t >= horizon:
                    continue
                event_type = types[bisect(cum_types, rnd() * total_types)]
                event = {
                    "event_id": f"{getrandbits(64):016x}",
                    "customer_id": c.cid,
                    "occurred_at": stamp(t, c),
                    "type": event_type,
                    "channel": pick(channels[event_type]),
                }
                topic = "interactions"
                # A lapsed customer still opens the odd e-mail, much less often.
                rate = c.interaction_rate if t < c.lapse_at else c.interaction_rate * 0.15
                nxt = t - log(1.0 - rnd()) / rate  # expovariate(rate), without the call
                if nxt < horizon:
                    push(heap, (nxt, seq, _INTERACTION, c))
                    seq += 1
            elif kind == _ORDER:
                c = payload
                if t >= horizon or t >= c.lapse_at:
                    continue
                amount = c.median * lognorm(0, c.sigma)
                if rnd() < 0.004:  # the odd big-ticket purchase (a sofa, a laptop)
                    amount *= uniform(15, 60)
                amount = round(amount, 2)
                n_orders += 1
                order_id = f"ord-{n_orders}"
                channel = "store" if rnd() < 0.25 else ("app" if rnd() < 0.3 else "web")
                event = {
                    "event_id": f"{getrandbits(64):016x}",
                    "customer_id": c.cid,
                    "occurred_at": stamp(t, c),
                    "type": "order_placed",
                    "order_id": order_id,
                    "amount": amount,
                    "currency": c.currency,
                    "items": 1 + int(rnd() * rnd() * 6),
                    "channel": channel,
                }
                if rnd() < 0.2:
                    share = pick((0.05, 0.1, 0.2))
                    event["discount"] = round(amount * share / (1 - share), 2)
                topic = "orders"
                r = rnd()
                if r < cfg.cancel_rate:
                    when = t + uniform(0.2 * _HOUR, 24 * _HOUR)
                    follow = _order_follow_up(event, "order_cancelled", amount)
                    push(heap, (when, seq, _EVENT, ("orders", c, follow)))
                    seq += 1
                elif r < cfg.cancel_rate + cfg.refund_rate:
                    when = t + uniform(2 * _DAY, 30 * _DAY)
                    part = amount if rnd() < 0.6 else round(amount * uniform(0.1, 0.9), 2)
                    follow = _order_follow_up(event, "order_refunded", part)
                    push(heap, (when, seq, _EVENT, ("orders", c, follow)))
                    seq += 1
                if rnd() < cfg.survey_rate:
                    push(heap, (t + uniform(_DAY, 4 * _DAY), seq, _EVENT, ("survey", c, None)))
                    seq += 1
                if rnd() < 0.02:  # even happy customers complain about a delivery now and then
                    push(heap, (t + uniform(_DAY, 6 * _DAY), seq, _COMPLAINT, c))
                    seq += 1
                nxt = t + expo(c.order_rate)
                if nxt < horizon and nxt < c.lapse_at:
                    push(heap, (nxt, seq, _ORDER, c))
                    seq += 1
                    if rnd() < 0.5:  # buying intent shows before the order
                        lead = min(nxt - t, 3 * _DAY) * rnd()
                        intent, ch = pick(_INTENT)
                        pre = {
                            "event_id": "",
                            "customer_id": c.cid,
                            "occurred_at": "",
                            "type": intent,
                        }
                        pre["channel"] = ch
                        push(heap, (nxt - lead, seq + 1, _EVENT, ("interactions", c, pre)))
                        seq += 2
            elif kind == _COMPLAINT:
                c = payload
                if t >= horizon or t >= c.lapse_at:
                    continue
                category = _CATEGORIES[bisect(cum_categories, rnd() * total_categories)]
                r = rnd()
                severity = "low" if r < 0.5 else ("medium" if r < 0.85 else "high")
                n_complaint_ids += 1
                event = {
                    "event_id": f"{getrandbits(64):016x}",
                    "customer_id": c.cid,
                    "occurred_at": stamp(t, c),
                    "type": "complaint_opened",
                    "complaint_id": f"cmp-{n_complaint_ids}",
                    "category": category,
                    "severity": severity,
                    "text": pick(_TEXTS[category]),
                    "channel": pick(("email", "phone", "chat", "store")),
                }
                topic = "complaints"
                c.satisfaction = max(0.0, c.satisfaction - 0.15)
                if severity == "high" and rnd() < 0.3:
                    c.lapse_at = min(c.lapse_at, t + expo(1 / (60 * _DAY)))
                when = t
                if rnd() < 0.25:
                    when += uniform(_DAY, 5 * _DAY)
                    raised = _SEVERITIES[min(2, _SEVERITIES.index(severity) + 1)]
                    follow = {**event, "type": "complaint_escalated", "severity": raised}
                    follow["text"] = "Still waiting for an answer."
                    push(heap, (when, seq, _EVENT, ("complaints", c, follow)))
                    seq += 1
                    severity = raised
                if rnd() < 0.85:
                    when += uniform(_DAY, 14 * _DAY)
                    follow = {**event, "type": "complaint_resolved", "severity": severity}
                    del follow["text"]
                    push(heap, (when, seq, _EVENT, ("complaints", c, follow)))
                    seq += 1
                if rnd() < 0.5:
                    contact = pick((("inbound_call", "phone"), ("support_chat", "chat")))
                    pre = {
                        "event_id": "",
                        "customer_id": c.cid,
                        "occurred_at": "",
                        "type": contact[0],
                    }
                    pre["channel"] = contact[1]
                    push(heap, (t + uniform(60, 2 * _HOUR), seq, _EVENT, ("interactions", c, pre)))
                    seq += 1
                if c.complaint_rate:
                    nxt = t + expo(c.complaint_rate)
                    if nxt < horizon:
                        push(heap, (nxt, seq, _COMPLAINT, c))
                        seq += 1
            elif kind == _EVENT:  # prepared earlier, occurs now
                if t >= horizon:
                    continue
                topic, c, event = payload
                if topic == "survey":
                    topic = "interactions"
                    event = _survey(c, rnd, rng.gauss)
                event["event_id"] = f"{getrandbits(64):016x}"
                event["occurred_at"] = stamp(t, c)

            else:  # _SEND, _RESEND: a record decided earlier (late, or a duplicate) goes out now
                if kind == _RESEND:
                    n_dup += 1
                n_sent += 1
                yield payload
                continue

            value = dumps(event)
            if rnd() < missing_key_rate:
                key = None
                n_no_key += 1
            else:
                key = c.key
            record = new_record(SimRecord, (topic, key, value))
            # One draw decides the delivery fault: late, malformed, duplicated, or none.
            u = rnd()
            if u < late_rate:
                # Sent late: hours mostly, a few days at worst.
                delay = expo(1 / (6 * _HOUR)) if rnd() < 0.75 else uniform(_DAY, late_days)
                n_late += 1
                push(heap, (t + delay, seq, _SEND, record))
                seq += 1
                continue
            if u < malformed_until:
                fault, record = _corrupt(record, rng, width, n_customers, cfg.keys)
                counts[f"malformed:{fault}"] = counts.get(f"malformed:{fault}", 0) + 1
                n_bad += 1
            elif u < duplicate_until:
                # The producer retried: the same bytes again, seconds to minutes later.
                push(heap, (t + expo(1 / 30.0), seq, _RESEND, record))
                seq += 1
            n_sent += 1
            yield record

    finally:
        # Also when the consumer stops early (islice, break): the generator is closed then.
        counts.update(sent=n_sent, duplicate=n_dup, late=n_late, malformed=n_bad)
        counts["no_key"] = n_no_key


def _cumulative(weights: Iterable[int]) -> list[int]:
    out: list[int] = []
    total = 0
    for w in weights:
        total += w
        out.append(total)
    return out


def _order_follow_up(placed: dict[str, Any], kind: str, amount: float) -> dict[str, Any]:
    # event_id and occurred_at are filled in when it occurs.
    return {
        "event_id": "",
        "customer_id": placed["customer_id"],
        "occurred_at": "",
        "type": kind,
        "order_id": placed["order_id"],
        "amount": amount,
        "currency": placed["currency"],
        "channel": placed["channel"],
    }


def _survey(c: _Customer, rnd: Any, gauss: Any) -> dict[str, Any]:
    """A survey answer; satisfied customers score high, complainers low."""
    s = c.satisfaction
    event: dict[str, Any] = {
        "event_id": "",
        "customer_id": c.cid,
        "occurred_at": "",
        "type": "survey_response",
        "channel": "email",
    }
    r = rnd()
    if r < 0.8:
        event["nps"] = min(10, max(0, round(s * 10 + gauss(0, 1.5))))
    if r > 0.4:
        event["csat"] = min(5, max(1, round(1 + s * 4 + gauss(0, 0.7))))
    if r > 0.6:
        event["ces"] = min(7, max(1, round(7 - s * 6 + gauss(0, 1.0))))
    return event


_FAULTS: Final = ("truncated", "wrong_type", "unknown_type", "not_utf8", "not_object", "key")


def _corrupt(
    record: SimRecord, rng: random.Random, width: int, n_customers: int, with_keys: bool
) -> tuple[str, SimRecord]:
    """A broken version of `record` and the name of the fault, as producers break them."""
    topic, key, value = record
    fault = rng.choice(_FAULTS if with_keys else _FAULTS[:-1])
    if fault == "truncated":  # a producer died mid-write; any proper prefix of {...} is bad
        return fault, SimRecord(topic, key, value[: rng.randrange(1, len(value) - 1)])
    if fault == "not_utf8":  # a Latin-1 encoder somewhere upstream
        cut = value.index(b'"customer_id":"') + 15
        return fault, SimRecord(topic, key, value[:cut] + b"\xe9" + value[cut:])
    if fault == "not_object":
        return fault, SimRecord(topic, key, b"[" + value + b"]")
    event = orjson.loads(value)
    if fault == "key":  # a producer keyed by something else (another customer's id)
        other = b"cust-%0*d" % (width, rng.randrange(n_customers + 1))
        if other == event["customer_id"].encode():
            other += b"x"
        return fault, SimRecord(topic, other, value)
    if fault == "unknown_type":
        event["type"] = rng.choice(_UNKNOWN_TYPES)
    elif "amount" in event:
        event["amount"] = str(event["amount"])  # "59.99": a string, not a number
    elif "severity" in event:
        event["severity"] = _SEVERITIES.index(event["severity"]) + 1
    else:
        event["occurred_at"] = int(datetime.fromisoformat(event["occurred_at"]).timestamp())
    return fault, SimRecord(topic, key, orjson.dumps(event))


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
