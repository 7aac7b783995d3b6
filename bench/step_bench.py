"""The grading step alone: the drain's backlog through `GradingStep`, without faust, a
broker or Redis.

What the worker does per event that the faust floor does not (docs/benchmarks.md,
"Worker: where its time goes"), as the input agent hands it over: batches of the
drain's average size; before each, the due customers of its partitions stepped
(`Clock.take_due`); each record decoded, brought to its partition's stream time and
applied; a grade and an encoded state per changed customer (`finish`); the states and
markers written to a dict table, through the state cache (`persist`). Sends are listed,
not sent. CPU time of this process only, so runs compare with far less noise than the
drain's on a shared machine: the place to try a change of the core's per-event cost.

    .venv/bin/python bench/step_bench.py                    # the drain's 28,000 customers
    .venv/bin/python bench/step_bench.py --customers 3000   # the quick drain's
    .venv/bin/python bench/step_bench.py --profile          # and cProfile's top functions

Writes bench/results/step_bench.json (after `make install`, so the core is compiled).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sys
import time
from pathlib import Path
from typing import Any, Final

REPO: Final = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere, without installing
sys.path.insert(0, str(REPO / "bench"))

import stream_bench as sb  # noqa: E402

from streams.app.clock import Clock  # noqa: E402
from streams.app.grading_step import GradingStep, Record, Routes  # noqa: E402
from streams.app.states import DictTable, StateStore  # noqa: E402
from streams.core.future import ahead_of_stream_seconds  # noqa: E402
from streams.core.policy import load_policy  # noqa: E402
from streams.schedule import key_partition  # noqa: E402

RESULTS: Final = REPO / "bench" / "results" / "step_bench.json"
PARTITIONS: Final = 4
BATCH: Final = 250  # records per input batch on the 1M drain (docs/benchmarks.md)
OUTPUTS: Final = ("tier_changed", "churn_risk_changed", "lifecycle_changed", "tier_warning")


def drain(records: list[Record]) -> dict[str, Any]:
    """The records through a fresh grading step, batch by batch; CPU seconds and counts."""
    policy = load_policy()
    clock = Clock("event", 86_400, ahead_of_stream_seconds(policy))
    routes = Routes({t: (t,) for t in sb.INPUTS}, {k: k for k in OUTPUTS}, "grades", "dlq")
    step = GradingStep(policy, clock, StateStore(DictTable(), 50_000), routes)
    stepped = grades = 0
    began = time.process_time()
    for at in range(0, len(records), BATCH):
        taken = records[at : at + BATCH]
        batch = step.store.batch()
        due = clock.take_due({r.partition for r in taken}, 1000)
        for customer_id, partition, now in due:
            step.time_step(customer_id, partition, now, batch)
        for record in taken:
            step.record(record, batch)
        step.finish(batch)
        step.persist(batch)
        stepped += len(due)
        grades += sum(1 for send in batch.sends if send.topic == "grades")
    seconds = time.process_time() - began
    return {"cpu_seconds": seconds, "time_steps": stepped, "grades": grades}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=28_000)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--profile", action="store_true", help="and cProfile's top functions")
    args = ap.parse_args()
    offsets: dict[tuple[str, int], int] = {}
    records = []
    for topic, key, value in sb.simulated(args.customers, 365, args.seed):
        partition = key_partition(key or b"", PARTITIONS)
        offset = offsets[(topic, partition)] = offsets.get((topic, partition), -1) + 1
        records.append(Record(topic, partition, offset, key, value, 0.0))
    load = os.getloadavg()[0]
    result = drain(records)
    per_event = result["cpu_seconds"] / len(records) * 1e6
    print(
        f"{len(records):,} events, {args.customers:,} customers: {per_event:.1f} µs of CPU "
        f"per event ({len(records) / result['cpu_seconds']:,.0f} events/s); time steps "
        f"{result['time_steps']:,}, grades {result['grades']:,}; load average {load:.1f} "
        "before"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    summary = result | {
        "customers": args.customers,
        "events": len(records),
        "us_per_event": per_event,
        "load_before": load,
        "command": " ".join(["bench/step_bench.py", *sys.argv[1:]]),
    }
    RESULTS.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    if args.profile:
        profile = cProfile.Profile()
        profile.runcall(drain, records[: len(records) // 5])
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)
    return 0


if __name__ == "__main__":
    sys.exit(main())
