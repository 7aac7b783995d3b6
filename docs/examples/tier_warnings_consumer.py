"""Retention mail: remind customers whose tier is about to fall what would keep it.

    python docs/examples/tier_warnings_consumer.py --bootstrap localhost:9092

gradestream sends a tier warning the policy's `tiers.warning_days` (default 14) before a
tier falls by time, once per grace period, and none when the customer earns the tier
back first. This reads the tier-warnings topic in its own consumer group and prints one
reminder per warning, de-duplicated by `event_id` (delivery is at least once), with
offsets committed after the records are handled.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from aiokafka import AIOKafkaConsumer


def reminder(warning: dict) -> dict:
    """Where a mail would be sent; here, one JSON line."""
    needs = warning["needs"]  # any one figure keeps the tier, for orders placed before
    ways = []
    if needs["spend"] is not None:
        ways.append(f"spend {needs['spend']:,.2f} more")
    if needs["orders"] is not None:
        ways.append(f"place {needs['orders']} more order(s)")
    if needs["single_order"] is not None:
        ways.append(f"place one order of {needs['single_order']:,.2f}")
    return {
        "event_id": warning["event_id"],
        "customer_id": warning["customer_id"],
        "subject": f"Keep your {warning['tier']} status",
        "body": f"Your {warning['tier']} status becomes {warning['downgrade_to']} on "
        f"{warning['downgrade_at'][:10]}. To keep it, {' or '.join(ways)} before then.",
    }


async def run(bootstrap: str, topic: str, group: str, idle_seconds: float | None) -> None:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    seen: set[str] = set()  # a real sender keeps these in its own store, bounded
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
                    warning = json.loads(record.value)
                    if warning.get("type") == "tier_warning" and warning["event_id"] not in seen:
                        seen.add(warning["event_id"])
                        print(json.dumps(reminder(warning)), flush=True)
            await consumer.commit()
    finally:
        await consumer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="localhost:9092")
    parser.add_argument("--topic", default="tier-warnings")
    parser.add_argument("--group", default="retention-mail")
    parser.add_argument("--exit-when-idle", type=float, default=None, metavar="SECONDS")
    args = parser.parse_args()
    asyncio.run(run(args.bootstrap, args.topic, args.group, args.exit_when_idle))


if __name__ == "__main__":
    main()
