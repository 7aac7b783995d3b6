"""The worker alone draining a backlog: events/s and CPU µs per event, for quick A/B runs.

The drain phase of bench/stream_bench.py (the same simulated backlog on three input
topics, the same `gradestream worker` process and measurement) without the peers and
the other phases, on the broker and Redis given by KAFKA_BOOTSTRAP_SERVERS / REDIS_URL
(default: the shared ones of `make kafka-up` / `make redis-up`). The figures of
docs/benchmarks.md "Worker: where its time goes" come from it.

    .venv/bin/python bench/worker_drain.py --customers 1000      # ~36k events
"""

from __future__ import annotations

import argparse
import asyncio
import os

import stream_bench as sb


async def run(customers: int, seed: int) -> None:
    sb.KAFKA = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    sb.REDIS = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    records = sb.simulated(customers, 365, seed)
    tmp = sb.CACHE / sb.RUN
    tmp.mkdir(parents=True)
    names = {kind: f"{sb.RUN}-in-{kind}" for kind in sb.INPUTS}
    await sb.create_topics(names.values())
    try:
        sent = await sb.produce(records, names)
        worker = sb.Worker("drain", names, tmp / "drain")
        proc = worker.start()
        try:
            await worker.ready()
            d = await sb.drain(proc, worker.events_in, sent, "worker")
            m = await worker.metrics()
        finally:
            worker.stop()
    finally:
        await sb.delete_run_topics()
    batches = m.get("gradestream_batch_records_count", 0.0)
    mean = m.get("gradestream_batch_records_sum", 0.0) / batches if batches else float("nan")
    print(
        f"{sent:,} events: {d.eps:,.0f} events/s, {d.cpu_us:,.1f} µs CPU/event, "
        f"{d.cpu_share:.2f} cores; {int(batches):,} batches of {mean:.1f} records on average"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args()
    asyncio.run(run(args.customers, args.seed))


if __name__ == "__main__":
    main()
