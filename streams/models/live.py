"""The fit's input from what the live system holds: the customers table's changelog.

BG/NBD needs, per customer, the repeat orders x, the days from the first order to the
last (t_x) and the customer's age T. The customer-grades snapshot does not carry them
(its frequency and monetary are the RFM window's, and it has no first order); the
table's changelog does: every customer's state, with its live orders ever and its first
and last order times. The changelog is compacted, so reading it from the start to its
end offsets gives every customer's latest state, as a restoring worker would.

Spend for Gamma-Gamma is the state's RFM window (net spend over the orders in it): the
state keeps no older spend.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable
from typing import Any, Final

import numpy as np
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streams.app.progress import is_marker
from streams.app.states import unframe
from streams.core.state import CustomerState, decode
from streams.models.history import DAY, Summary

__all__ = ["read_changelog", "summarize_states"]

# How long one fetch may wait for records before the end offsets are checked again.
_FETCH_MS: Final = 1_000


async def read_changelog(
    bootstrap: str, topic: str, options: dict[str, Any] | None = None, within: float = 300.0
) -> tuple[list[CustomerState], dict[str, int]]:
    """Every customer's latest state in the changelog `topic`, read from the start to the
    end offsets it had when the read began, and counts (records, markers, deleted,
    unreadable). Raises TimeoutError after `within` seconds, ValueError for a topic the
    cluster does not have."""
    async with asyncio.timeout(within):
        partitions = await _partitions(bootstrap, topic, options or {})
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, **(options or {})
    )
    await consumer.start()
    counts = {"records": 0, "markers": 0, "deleted": 0, "unreadable": 0}
    latest: dict[bytes, bytes | None] = {}
    try:
        async with asyncio.timeout(within):
            tps = [TopicPartition(topic, p) for p in partitions]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            left = {tp for tp in tps if ends[tp] > 0}
            while left:
                got = await consumer.getmany(*left, timeout_ms=_FETCH_MS)
                for records in got.values():
                    for r in records:
                        if r.key is None:
                            continue
                        counts["records"] += 1
                        latest[r.key] = r.value
                for tp in list(left):
                    if await consumer.position(tp) >= ends[tp]:
                        left.discard(tp)
    finally:
        await consumer.stop()
    states: list[CustomerState] = []
    for key, value in latest.items():
        if is_marker(key):
            counts["markers"] += 1
        elif value is None:
            counts["deleted"] += 1
        else:
            try:
                states.append(decode(unframe(value)[1]))
            except (ValueError, TypeError, KeyError, IndexError):
                counts["unreadable"] += 1
    return states, counts


async def _partitions(bootstrap: str, topic: str, options: dict[str, Any]) -> list[int]:
    """The topic's partition numbers. Topics are listed, not asked for by name: a metadata
    request naming a missing topic makes a broker that auto-creates topics create it."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **options)
    await admin.start()
    try:
        if topic not in set(await admin.list_topics()):
            raise ValueError(f"topic {topic!r} does not exist")
        (described,) = await admin.describe_topics([topic])
        return sorted(p["partition"] for p in described["partitions"])
    finally:
        await admin.close()


def summarize_states(
    states: Iterable[CustomerState],
    calibration_end: float | None = None,
    counts: dict[str, int] | None = None,
) -> Summary:
    """The BG/NBD and spend summary of the states at `calibration_end` (epoch seconds;
    default: the latest state's as_of, the stream time the states had reached). Customers
    with no live order, or whose first order is not before the cut, are left out. In
    customer id order: the changelog's partitions interleave as they come, and the fit's
    sums (and so its last digits, and the model_version) must not depend on that."""
    states = sorted(states, key=lambda s: s.customer_id)
    cut = max((s.as_of for s in states), default=0) if calibration_end is None else calibration_end
    ids: list[str] = []
    rows: list[tuple[float, float, float, float, float]] = []
    for s in states:
        first, last, n = s.first_order, s.last_order, s.live_orders
        if n <= 0 or first is None or last is None or first >= cut:
            continue
        ids.append(s.customer_id)
        win = s.win_count
        mean = max(0, s.win_cents) / 100 / win if win > 0 else math.nan
        rows.append((n - 1.0, (last - first) / DAY, (cut - first) / DAY, float(win), mean))
    arr = np.array(rows, dtype=np.float64).reshape(-1, 5)
    out = dict(counts or {})
    out["customers"] = len(ids)
    mean_value = arr[:, 4].copy()
    mean_value[np.isnan(mean_value)] = 0.0  # no order in the window: left out of the spend fit
    return Summary(
        customer_ids=tuple(ids),
        x=arr[:, 0].copy(),
        t_x=arr[:, 1].copy(),
        T=arr[:, 2].copy(),
        n=arr[:, 3].copy(),
        mean_value=mean_value,
        holdout=np.zeros(len(ids)),
        calibration_end=float(cut),
        observation_end=float(cut),
        counts=out,
    )
