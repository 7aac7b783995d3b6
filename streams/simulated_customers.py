"""The simulated customers and what their events are drawn from: the customer mix (purchase
rate, order values, currency and clock offset, complaints, satisfaction, lifetime) and the
catalog of interaction types and channels, complaint categories and texts, and survey
scores. Kept apart from `simulate`, which schedules the events in time and delivers them
with faults, so who the customers are reads in one place and the machinery in another;
every draw still comes from the one seeded `random.Random` that `simulate` passes in.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from streams.simulate import SimConfig

_YEAR: Final = 365.0 * 86400.0


def _cumulative(weights: Iterable[int]) -> list[int]:
    out: list[int] = []
    total = 0
    for w in weights:
        total += w
        out.append(total)
    return out


INTERACTIONS: Final = (
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
INTERACTION_TYPES: Final = tuple(t for t, _, _ in INTERACTIONS)
CHANNELS: Final = {t: ch for t, _, ch in INTERACTIONS}
# Cumulative weights: a type is drawn by bisecting a uniform draw into them.
CUM_INTERACTIONS: Final = _cumulative(w for _, w, _ in INTERACTIONS)
# The interactions that show buying intent before an order: (type, channel).
INTENT: Final = (("purchase_inquiry", "web"), ("price_inquiry", "web"), ("site_visit", "web"))
CATEGORIES: Final = ("delivery", "quality", "billing", "service", "product", "other")
CUM_CATEGORIES: Final = _cumulative((35, 20, 15, 15, 10, 5))
TEXTS: Final = {
    "delivery": ("Parcel arrived a week late.", "Box was crushed in transit.", "Never got it."),
    "quality": ("Stitching came apart after one wash.", "Not as pictured.", "Arrived broken."),
    "billing": ("I was charged twice.", "Refund still not on my card.", "Wrong VAT on invoice."),
    "service": ("Waited 40 minutes on hold.", "Agent hung up on me.", "No reply to my e-mail."),
    "product": ("Battery dies within an hour.", "Size chart is wrong.", "Missing parts."),
    "other": ("Too many marketing e-mails.", "Can't delete my account.", "Website keeps crashing."),
}
SEVERITIES: Final = ("low", "medium", "high")
# Offsets producers put on timestamps, by currency: (seconds east of UTC, suffix).
OFFSETS: Final = {
    "USD": ((0, "Z"), (0, "Z"), (-5 * 3600, "-05:00"), (-8 * 3600, "-08:00")),
    "EUR": ((3600, "+01:00"), (0, "Z")),
    "GBP": ((0, "Z"), (0, "+00:00")),
}


class Customer:
    """One simulated customer's traits (rates per second); `draw_customer` sets them."""

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


def lapse_scale(cfg: SimConfig) -> float:
    """The mean lifetime (seconds) that gives `lapse_per_year`; 0: customers never lapse."""
    per_year = cfg.lapse_per_year
    return _YEAR / -math.log(1 - min(per_year, 0.999)) if per_year else 0


def draw_customer(
    c: Customer, cfg: SimConfig, rng: random.Random, horizon: float, lapse: float
) -> float:
    """Draw the customer's traits (`lapse`: `lapse_scale(cfg)`); returns when they join."""
    rnd, uniform, lognorm = rng.random, rng.uniform, rng.lognormvariate
    joined = uniform(0, horizon) if rnd() < cfg.joining_rate else 0.0
    if rnd() < cfg.foreign_currency_rate:
        c.currency = "EUR" if rnd() < 0.6 else "GBP"
    c.offset, c.suffix = rng.choice(OFFSETS[c.currency])
    if rnd() < cfg.big_spender_rate:
        per_year = uniform(12, 30)
        c.median = uniform(2500, 6000)
        c.sigma = 0.35
    elif rnd() < cfg.prospect_rate:
        per_year = 0.0
    else:
        shape = cfg.order_rate_shape or 1.0
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
    c.lapse_at = joined + rng.expovariate(1 / lapse) if lapse else math.inf
    return joined


# The events below are prepared ahead of time: event_id and occurred_at are filled in when
# they occur.


def prepared(c: Customer, kind: str, channel: str) -> dict[str, Any]:
    """An interaction of `kind` on `channel`."""
    return {
        "event_id": "",
        "customer_id": c.cid,
        "occurred_at": "",
        "type": kind,
        "channel": channel,
    }


def order_follow_up(placed: dict[str, Any], kind: str, amount: float) -> dict[str, Any]:
    """A cancellation or refund (`kind`) of `amount` of the order `placed`."""
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


def survey(c: Customer, rnd: Any, gauss: Any) -> dict[str, Any]:
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
