"""A Quix Streams peer of the worker: the per-customer RFM update with Quix's RocksDB state.

For every input record, keyed by customer id: parse with orjson, read the customer's state
from Quix's RocksDB store (changelogged to Kafka, at-least-once), update recency
(last order time), frequency (orders), monetary (net amount), last activity and counts
per kind, write the state back, and produce one record per input (the updated RFM) to
the output topic. Malformed input produces an error record instead, so every input gives
exactly one output. Far less than the worker does (no schema validation, no tiers,
lifecycle, churn model, time sweep or dead letters): a floor for a stateful Python
stream processor, not an equal.

Runs in its own virtualenv (.local/bench/quix-venv; quixstreams pins pydantic below the
project's pin), until SIGTERM:

    python bench/peers/quix_rfm.py --bootstrap HOST:PORT --group G --out TOPIC \
        --state-dir DIR IN1 IN2 ...
"""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any

import orjson
from quixstreams import Application, State

ORDER_IN = {"order_placed"}
ORDER_OUT = {"order_cancelled", "order_refunded"}


def rfm_update(value: bytes, state: State) -> bytes:
    try:
        body = orjson.loads(value)
        kind = body["type"]
        t = int(datetime.fromisoformat(body["occurred_at"]).timestamp())
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return b'{"error":"malformed"}'
    rfm: dict[str, Any] = state.get("rfm") or {"f": 0, "m": 0.0, "last_order": None, "seen": 0}
    if kind in ORDER_IN:
        rfm["f"] += 1
        rfm["m"] += float(body.get("amount") or 0)
        rfm["last_order"] = max(t, rfm["last_order"] or t)
    elif kind in ORDER_OUT:
        rfm["m"] -= float(body.get("amount") or 0)
    rfm["seen"] = max(t, rfm["seen"])
    counts = rfm.setdefault("kinds", {})
    counts[kind] = counts.get(kind, 0) + 1
    state.set("rfm", rfm)
    recency = None if rfm["last_order"] is None else rfm["seen"] - rfm["last_order"]
    out = {"customer_id": body.get("customer_id"), "r": recency, "f": rfm["f"], "m": rfm["m"]}
    return orjson.dumps(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("inputs", nargs="+")
    args = ap.parse_args()
    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        state_dir=args.state_dir,
        loglevel="WARNING",
    )
    out = app.topic(args.out, key_serializer="bytes", value_serializer="bytes")
    for name in args.inputs:
        topic = app.topic(name, key_deserializer="bytes", value_deserializer="bytes")
        sdf = app.dataframe(topic)
        sdf = sdf.apply(rfm_update, stateful=True)
        sdf.to_topic(out)
    app.run()


if __name__ == "__main__":
    main()
