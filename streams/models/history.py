"""Order history (JSONL events) -> per-customer (x, t_x, T, mean value) -> a fitted Model.

The input is the event format of the input topics, one JSON object per line, as `replay`
reads and `simulate` writes. Only order events are used; every other line is counted and
skipped, and nothing is dropped without a count in the report:

* order_placed opens an order (by customer_id + order_id); a second placement of the same
  order is ignored. Duplicated events (same customer_id + event_id) count once.
* order_cancelled removes the order from frequency and value (if cancelled before the cut).
* order_refunded lowers the order's net value (never below 0); the order still counts as a
  purchase, as in the core: a refund is not an un-purchase.
* Amounts are converted to the base currency with `rates` (base units per 1 unit of the
  currency, as in the policy's `[currency] rates`); an order in a currency with no rate is
  skipped and counted, as the core rejects it. With no rates only the base currency is used.

Times: an event counts for calibration when it occurred strictly before `calibration_end`.
Per customer with at least one live order before the cut (times in days):
x = orders - 1, t_x = last - first, T = calibration_end - first, mean value = net / orders.
Orders in [calibration_end, observation_end) are the holdout counts (for evaluation).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import orjson

from streams.models import bgnbd, gamma_gamma
from streams.models.bgnbd import FloatArray
from streams.models.model import Model, ModelFit, model_version_for

__all__ = [
    "MIN_CUSTOMERS",
    "MIN_REPEAT_CUSTOMERS",
    "FitError",
    "History",
    "Summary",
    "TooLittleData",
    "fit_history",
    "fit_summary",
    "read_history",
    "rfc3339",
]

DAY: Final = 86_400
_ORDER_TYPES: Final = frozenset({"order_placed", "order_refunded", "order_cancelled"})


# Below these, a fit says it has too little data rather than fit noise: BG/NBD learns
# drop-out from repeat buyers, and Gamma-Gamma the spread of a customer's order values.
MIN_CUSTOMERS: Final = 100  # customers with an order before the cut
MIN_REPEAT_CUSTOMERS: Final = 20  # of them, with two orders or more and some spend


class FitError(ValueError):
    """The history cannot give a usable model (too few customers, no convergence)."""


class TooLittleData(FitError):
    """Too few customers, or too few repeat customers, to fit: the policy should grade
    with the model-free score meanwhile (`gradestream fit` writes an `Unfitted` file)."""


def _epoch(text: Any) -> float | None:
    """Epoch seconds of an RFC 3339 time with an offset; None when it is not one."""
    if not isinstance(text, str):
        return None
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    # A naive time would be read in this machine's zone: refuse it, as the core does.
    return None if dt.tzinfo is None else dt.timestamp()


def to_epoch(when: datetime | str | float) -> float:
    """Accept a timezone-aware datetime, an RFC 3339 string or epoch seconds."""
    if isinstance(when, datetime):
        if when.tzinfo is None:
            raise ValueError(f"{when!r} has no timezone")
        return when.timestamp()
    if isinstance(when, str):
        value = _epoch(when)
        if value is None:
            raise ValueError(f"{when!r} is not an RFC 3339 time with an offset")
        return value
    return float(when)


@dataclass(slots=True)
class _Order:
    placed: float  # epoch seconds
    amount: float  # base currency
    # (time, amount) of refunds and the times of cancellations, applied at a cut.
    refunds: list[tuple[float, float]] = field(default_factory=list)
    cancelled: float = math.inf


@dataclass(slots=True)
class History:
    """Orders by customer, as read from the file, and the reading counts."""

    orders: dict[str, dict[str, _Order]]
    counts: dict[str, int]
    last_event: float  # the latest occurred_at of any readable event (epoch seconds)


def read_history(
    path: str | Path, rates: Mapping[str, float] | None = None, base_currency: str = "USD"
) -> History:
    """Read order events from a JSONL file (see the module docstring for the rules)."""
    conv = {base_currency: 1.0, **(rates or {})}
    conv[base_currency] = 1.0
    counts: dict[str, int] = {"lines": 0, "order_events": 0}
    orders: dict[str, dict[str, _Order]] = {}
    # Refunds and cancellations may come before their placement in a file (late events).
    pending: list[tuple[str, str, str, float, float]] = []
    seen: set[tuple[str, str]] = set()
    last_event = -math.inf

    def skip(reason: str) -> None:
        counts[f"skipped:{reason}"] = counts.get(f"skipped:{reason}", 0) + 1

    with Path(path).open("rb") as lines:
        for line in lines:
            counts["lines"] += 1
            if not line.strip():
                skip("blank")
                continue
            try:
                ev = orjson.loads(line)
            except orjson.JSONDecodeError:
                skip("invalid_json")
                continue
            if not isinstance(ev, dict):
                skip("not_an_object")
                continue
            when = _epoch(ev.get("occurred_at"))
            if when is not None:
                last_event = max(last_event, when)
            kind = ev.get("type")
            if kind not in _ORDER_TYPES:
                skip("not_an_order")
                continue
            cid, oid, eid = ev.get("customer_id"), ev.get("order_id"), ev.get("event_id")
            amount, currency = ev.get("amount"), ev.get("currency")
            if (
                when is None
                or not isinstance(cid, str)
                or not cid
                or not isinstance(oid, str)
                or not isinstance(eid, str)
                or isinstance(amount, bool)
                or not isinstance(amount, int | float)
                or not math.isfinite(amount)
                or amount < 0
                or not isinstance(currency, str)
            ):
                skip("bad_order_event")
                continue
            if (cid, eid) in seen:
                counts["duplicates"] = counts.get("duplicates", 0) + 1
                continue
            seen.add((cid, eid))
            rate = conv.get(currency)
            if rate is None:
                skip("unknown_currency")
                continue
            counts["order_events"] += 1
            value = float(amount) * rate
            if kind == "order_placed":
                mine = orders.setdefault(cid, {})
                if oid in mine:
                    skip("order_placed_twice")
                    continue
                mine[oid] = _Order(placed=when, amount=value)
            else:
                pending.append((kind, cid, oid, when, value))

    for kind, cid, oid, when, value in pending:
        order = orders.get(cid, {}).get(oid)
        if order is None:
            # Placed before the history starts (or in an unknown currency): nothing to adjust.
            skip(f"{kind}_without_order")
        elif kind == "order_cancelled":
            order.cancelled = min(order.cancelled, when)
        else:
            order.refunds.append((when, value))
    return History(orders, counts, last_event)


@dataclass(frozen=True, slots=True)
class Summary:
    """Per-customer BG/NBD and spend inputs at a cut, in one order (customer_ids)."""

    customer_ids: tuple[str, ...]
    x: FloatArray  # repeat orders
    t_x: FloatArray  # days from first to last order
    T: FloatArray  # days from first order to the cut
    n: FloatArray  # orders (x + 1)
    mean_value: FloatArray  # mean net order value, base currency
    holdout: FloatArray  # orders in [calibration_end, observation_end)
    calibration_end: float
    observation_end: float
    counts: dict[str, int]


def summarize(
    history: History, calibration_end: float, observation_end: float | None = None
) -> Summary:
    """The per-customer summary at `calibration_end` (epoch seconds), see the module doc."""
    end = calibration_end if observation_end is None else observation_end
    if end < calibration_end:
        raise ValueError("observation_end must not be before calibration_end")
    ids: list[str] = []
    rows: list[tuple[float, float, float, float, float, float]] = []
    new_in_holdout = 0
    for cid, mine in history.orders.items():
        times: list[float] = []
        net = 0.0
        later = 0
        for o in mine.values():
            if o.placed < calibration_end:
                if o.cancelled < calibration_end:
                    continue
                times.append(o.placed)
                refunded = sum(v for t, v in o.refunds if t < calibration_end)
                net += max(0.0, o.amount - refunded)
            elif o.placed < end and o.cancelled >= end:
                later += 1
        if not times:
            new_in_holdout += later > 0
            continue
        first, last, n = min(times), max(times), len(times)
        ids.append(cid)
        rows.append(
            (
                n - 1.0,
                (last - first) / DAY,
                (calibration_end - first) / DAY,
                float(n),
                net / n,
                float(later),
            )
        )
    arr = np.array(rows, dtype=np.float64).reshape(-1, 6)
    counts = dict(history.counts)
    counts["customers"] = len(ids)
    counts["customers_first_order_after_cut"] = new_in_holdout
    return Summary(
        customer_ids=tuple(ids),
        x=arr[:, 0].copy(),
        t_x=arr[:, 1].copy(),
        T=arr[:, 2].copy(),
        n=arr[:, 3].copy(),
        mean_value=arr[:, 4].copy(),
        holdout=arr[:, 5].copy(),
        calibration_end=calibration_end,
        observation_end=end,
        counts=counts,
    )


def fit_summary(
    summary: Summary,
    currency: str = "USD",
    source: str = "",
    clv_horizon_days: float = 365.0,
    monthly_discount: float = 0.01,
    model_version: str | None = None,
    min_customers: int = MIN_CUSTOMERS,
    min_repeat: int = MIN_REPEAT_CUSTOMERS,
) -> Model:
    """Fit BG/NBD on every customer and Gamma-Gamma on repeat customers with value > 0.

    Raises `TooLittleData` below `min_customers` customers or `min_repeat` repeat
    customers with spend (never fewer than 10 of either: the optimisers need some)."""
    customers = int(summary.x.size)
    if customers < max(10, min_customers):
        raise TooLittleData(
            f"{customers} customers with orders before the cut: too few to fit "
            f"(at least {max(10, min_customers)})"
        )
    # Gamma-Gamma learns the within-customer spread, which one order cannot show; a mean
    # of 0 (all refunded) has zero density under a Gamma, so those are left out too.
    repeat = (summary.n >= 2) & (summary.mean_value > 0)
    n_repeat = int(repeat.sum())
    if n_repeat < max(10, min_repeat):
        raise TooLittleData(
            f"{n_repeat} repeat customers with spend: too few to fit "
            f"(at least {max(10, min_repeat)})"
        )
    bg_params, bg_report = bgnbd.fit(summary.x, summary.t_x, summary.T)
    gg_params, gg_report = gamma_gamma.fit(summary.n[repeat], summary.mean_value[repeat])
    counts = dict(summary.counts)
    counts["spend_customers"] = n_repeat
    return Model(
        model_version=model_version or model_version_for(bg_params, gg_params),
        currency=currency,
        bgnbd=bg_params,
        gamma_gamma=gg_params,
        clv_horizon_days=clv_horizon_days,
        monthly_discount=monthly_discount,
        fit=ModelFit(
            bgnbd=bg_report,
            gamma_gamma=gg_report,
            calibration_end=rfc3339(summary.calibration_end),
            source=source,
            counts=counts,
        ),
    )


def fit_history(
    path: str | Path,
    calibration_end: datetime | str | float | None = None,
    *,
    rates: Mapping[str, float] | None = None,
    base_currency: str = "USD",
    clv_horizon_days: float = 365.0,
    monthly_discount: float = 0.01,
    model_version: str | None = None,
    min_customers: int = MIN_CUSTOMERS,
    min_repeat: int = MIN_REPEAT_CUSTOMERS,
) -> Model:
    """Read an order history and fit the model on orders before `calibration_end`.

    calibration_end defaults to just after the latest event in the file (fit on all of it).
    """
    # Refuse bad arguments before the (possibly long) read, with the MODEL.json key names.
    if not (math.isfinite(clv_horizon_days) and 0 < clv_horizon_days <= 3660):
        raise ValueError("clv.horizon_days: must be a number in (0, 3660]")
    if not (math.isfinite(monthly_discount) and 0 <= monthly_discount < 1):
        raise ValueError("clv.monthly_discount: must be a number in [0, 1)")
    cut = None if calibration_end is None else to_epoch(calibration_end)
    history = read_history(path, rates, base_currency)
    if cut is None:
        if not math.isfinite(history.last_event):
            raise FitError(f"{path}: no event with a valid occurred_at")
        cut = math.floor(history.last_event) + 1.0
    return fit_summary(
        summarize(history, cut),
        currency=base_currency,
        source=Path(path).name,
        clv_horizon_days=clv_horizon_days,
        monthly_discount=monthly_discount,
        model_version=model_version,
        min_customers=min_customers,
        min_repeat=min_repeat,
    )


def rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat().replace("+00:00", "Z")
