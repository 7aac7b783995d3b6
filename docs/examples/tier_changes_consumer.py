"""Marketing automation: act on tier changes, once per change.

    python docs/examples/tier_changes_consumer.py --bootstrap localhost:9092

Reads the tier-changes topic in its own consumer group and prints one line per tier
change. Delivery is at least once (a redelivery after a crash or rebalance, or the
worker re-publishing after its own restart), so it de-duplicates by `event_id`, which
gradestream derives deterministically from the change itself. Offsets are committed
only after the records are handled. A real integration would keep the seen ids in its
own store (for example a unique key in its database) rather than in memory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections import OrderedDict

from aiokafka import AIOKafkaConsumer


class SeenIds:
    """The most recent event ids, bounded: redeliveries arrive close to the original."""

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self.ids: OrderedDict[str, None] = OrderedDict()

    def first_time(self, event_id: str) -> bool:
        if event_id in self.ids:
            return False
        self.ids[event_id] = None
        if len(self.ids) > self.capacity:
            self.ids.popitem(last=False)
        return True


def act(change: dict) -> None:
    """Where a campaign would be triggered; here, one JSON line."""
    print(
        json.dumps(
            {
                "event_id": change["event_id"],
                "customer_id": change["customer_id"],
                "from": change["previous_tier"],
                "to": change["tier"],
                "direction": change["direction"],
                "cause": change["cause"]["kind"],
                "segment": change["snapshot"]["segment"],
            }
        ),
        flush=True,
    )


async def run(bootstrap: str, topic: str, group: str, idle_seconds: float | None) -> None:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",  # a new group starts from the oldest change kept
        enable_auto_commit=False,
    )
    seen = SeenIds()
    await consumer.start()
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=1000)
            if not batches:
                if idle_seconds is not None:
                    idle_seconds -= 1
                    if idle_seconds <= 0:
                        return
                continue
            for records in batches.values():
                for record in records:
                    change = json.loads(record.value)
                    # Tolerant reader: fields we do not know are ignored.
                    if change.get("type") == "tier_changed" and seen.first_time(change["event_id"]):
                        act(change)
            await consumer.commit()
    finally:
        await consumer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="localhost:9092")
    parser.add_argument("--topic", default="tier-changes")
    parser.add_argument("--group", default="marketing-automation")
    parser.add_argument(
        "--exit-when-idle",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop after this long without records (default: run forever)",
    )
    args = parser.parse_args()
    asyncio.run(run(args.bootstrap, args.topic, args.group, args.exit_when_idle))


if __name__ == "__main__":
    main()
