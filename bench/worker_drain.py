"""The worker alone draining a backlog: events/s and CPU µs per event, for quick A/B runs.

The drain phase of bench/stream_bench.py (the same simulated backlog on three input
topics, the same `gradestream worker` process and measurement) without the other
phases, on the broker and Redis given by KAFKA_BOOTSTRAP_SERVERS / REDIS_URL (default:
the shared ones of `make kafka-up` / `make redis-up`). The figures of
docs/benchmarks.md "Worker: where its time goes" come from it.

    .venv/bin/python bench/worker_drain.py --customers 1000      # ~36k events
    .venv/bin/python bench/worker_drain.py --floor               # and the faust floor
    .venv/bin/python bench/worker_drain.py --workers 1 2         # one worker, then two

`--floor` drains the same backlog with bench/peers/faust_floor.py after the workers, so
that the ratio of the two comes from one run on a shared machine. `--workers 1 2`
drains it with one worker, then with two of one group (own data directories and ports),
their events and CPU summed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys

import stream_bench as sb


async def drain_workers(n: int, names: dict[str, str], sent: int, tag: str) -> sb.Drain:
    workers = [sb.Worker(f"drain{tag}", names, sb.CACHE / sb.RUN / f"{tag}-{i}") for i in range(n)]
    procs = sb.Procs([w.start() for w in workers])
    try:
        await asyncio.gather(*(w.ready() for w in workers))

        async def events_in() -> int:
            return sum(await asyncio.gather(*(w.events_in() for w in workers)))

        d = await sb.drain(procs, events_in, sent, f"{n} worker(s)")  # type: ignore[arg-type]
        m = await workers[0].metrics()
    finally:
        for w in workers:
            w.stop()
    batches = m.get("gradestream_batch_records_count", 0.0)
    mean = m.get("gradestream_batch_records_sum", 0.0) / batches if batches else float("nan")
    counts = {
        name: int(sum(v for k, v in m.items() if k.startswith(f"gradestream_{name}_total")))
        for name in ("dead_letters", "outputs", "redis_snapshots")
    }
    # The dead letters by reason: a backlog on three topics must refuse no good event as
    # too_late (the input topics are aligned by event time, docs/worker.md).
    reasons = {
        k.partition('reason="')[2].rstrip('"}'): int(v)
        for k, v in m.items()
        if k.startswith("gradestream_dead_letters_total{")
    }
    print(
        f"{n} worker(s): {d.eps:,.0f} events/s, {d.cpu_us:,.1f} µs CPU/event, "
        f"{d.cpu_share:.2f} cores; batches of {mean:.1f} records on average; {counts} "
        f"(first worker); dead letters by reason {reasons}",
        flush=True,
    )
    return d


async def drain_floor(names: dict[str, str], sent: int) -> sb.Drain:
    out = f"{sb.RUN}-faust-out"
    await sb.create_topics([out])
    argv = [sys.executable, str(sb.REPO / "bench/peers/faust_floor.py")]
    argv += ["--bootstrap", sb.KAFKA, "--group", f"{sb.RUN}-faust", "--out", out]
    proc = sb.Proc.start([*argv, *names.values()], dict(os.environ), sb.CACHE / sb.RUN / "f.log")
    try:
        async with sb.EndOffsets([out]) as outputs:
            d = await sb.drain(proc, outputs.total, sent, "faust floor")
    finally:
        proc.stop()
    print(f"faust floor: {d.eps:,.0f} events/s, {d.cpu_us:,.1f} µs CPU/event", flush=True)
    return d


async def run(customers: int, seed: int, workers: list[int], floor: bool) -> None:
    sb.KAFKA = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    sb.REDIS = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    print(f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
    records = sb.simulated(customers, 365, seed)
    (sb.CACHE / sb.RUN).mkdir(parents=True)
    names = {kind: f"{sb.RUN}-in-{kind}" for kind in sb.INPUTS}
    await sb.create_topics(names.values())
    try:
        sent = await sb.produce(records, names)
        print(f"{sent:,} events", flush=True)
        drains = [await drain_workers(n, names, sent, str(n)) for n in workers]
        if floor:
            d = await drain_floor(names, sent)
            for n, w in zip(workers, drains, strict=True):
                print(f"{n} worker(s) ÷ faust floor: {w.eps / d.eps:.0%} of its events/s")
        if len(drains) > 1:
            print(f"{workers[-1]} worker(s) ÷ {workers[0]}: {drains[-1].eps / drains[0].eps:.2f}x")
    finally:
        await sb.delete_run_topics()
        shutil.rmtree(sb.CACHE / sb.RUN, ignore_errors=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--workers", type=int, nargs="+", default=[1], help="worker counts, in turn")
    ap.add_argument("--floor", action="store_true", help="and the faust floor, same backlog")
    args = ap.parse_args()
    asyncio.run(run(args.customers, args.seed, args.workers, args.floor))


if __name__ == "__main__":
    main()
