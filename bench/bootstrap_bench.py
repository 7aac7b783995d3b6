"""`gradestream bootstrap` against `gradestream replay` of the same history, in one run.

Simulates (as `gradestream simulate --out` does; cached under .local/bench/ by its
parameters, shared with bench/replay_bench.py) a history of about a million events, then
times, on the same CPUs (one job per CPU, at most one per partition, as both commands
default to):

* replay: `streams.replay_jobs.replay_parallel`, writing outputs, grades, dead letters;
* bootstrap: `streams.bootstrap.Bootstrap.run` up to the end of the history against the
  broker at KAFKA_BOOTSTRAP_SERVERS (default 127.0.0.1:9092), with an app id and topics
  of its own (deleted after): checks and offsets at T, the same grading with the states
  kept, then states, markers and grades produced and the offsets committed.

The aim (issue 19): bootstrap at most 2x replay. It prints both times and writes
bench/results/bootstrap_bench.json, with the load average and the busiest processes at
the start (the machine is shared: say what else ran).

    .venv/bin/python bench/bootstrap_bench.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Final

REPO: Final = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere, without installing

from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # noqa: E402

from streams.bootstrap import Bootstrap  # noqa: E402
from streams.core.policy import load_policy  # noqa: E402
from streams.replay_jobs import default_jobs, replay_parallel  # noqa: E402
from streams.settings import Settings  # noqa: E402
from streams.simulate import SimConfig, generate, write_jsonl  # noqa: E402
from streams.topics import expected_topics  # noqa: E402

CACHE: Final = REPO / ".local" / "bench"
RESULTS: Final = REPO / "bench" / "results" / "bootstrap_bench.json"
PARTITIONS: Final = 4


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=28_000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args(argv)
    kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")

    source = simulated(args.customers, args.days, args.seed)
    lines = sum(1 for _ in source.open("rb"))
    jobs = default_jobs(PARTITIONS)
    policy = load_policy()
    machine = {"load_before": os.getloadavg()[0], "busiest": busiest()}

    with tempfile.TemporaryDirectory(prefix="bootstrap-bench-") as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        stats = replay_parallel(
            source, policy, work / "out", work / "snap", work / "dlq",
            partitions=PARTITIONS, jobs=jobs,
        )  # fmt: skip
        replay_s = time.perf_counter() - started
        assert stats.stream_time is not None

        settings = own_settings(kafka)
        asyncio.run(create_inputs(settings))
        try:
            job = Bootstrap(
                settings, policy, source, stats.stream_time + 1, work / "bootstrap.dlq", jobs
            )
            started = time.perf_counter()
            done = job.run()
            bootstrap_s = time.perf_counter() - started
        finally:
            asyncio.run(delete_topics(settings))

    results: dict[str, Any] = {
        "lines": lines,
        "customers": stats.customers,
        "jobs": jobs,
        "partitions": PARTITIONS,
        "replay_s": replay_s,
        "bootstrap_s": bootstrap_s,
        "ratio": bootstrap_s / replay_s,
        "bootstrap_phases_s": done.seconds,
        "states": done.handed.states,
        "grades": done.handed.grades,
        "markers": done.handed.markers,
        "cpus": len(os.sched_getaffinity(0)),
        **machine,
        "load_after": os.getloadavg()[0],
        "commit": commit(),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(
        f"{lines:,} lines, {stats.customers:,} customers, {jobs} jobs: "
        f"replay {replay_s:.1f} s, bootstrap {bootstrap_s:.1f} s "
        f"({', '.join(f'{k} {v:.1f} s' for k, v in done.seconds.items())}), "
        f"ratio {bootstrap_s / replay_s:.2f} (aim: at most 2)"
    )
    print(f"load average {machine['load_before']:.1f} at the start; written {RESULTS}")
    return 0


def simulated(customers: int, days: int, seed: int) -> Path:
    """The simulated history, generated once (the same file as bench/replay_bench.py)."""
    path = CACHE / f"sim-c{customers}-d{days}-s{seed}.jsonl"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        print(f"simulating {customers:,} customers x {days} days (seed {seed}) -> {path}")
        tmp = path.with_suffix(".tmp")
        write_jsonl(generate(customers, days, seed, config=SimConfig(keys=False)), tmp)
        tmp.rename(path)
    return path


def own_settings(kafka: str) -> Settings:
    """An app id and topic names of this run's own."""
    name = f"bootstrap-bench-{uuid.uuid4().hex[:8]}"
    topics = (
        "orders", "complaints", "interactions", "tier_changes", "churn_risk",
        "lifecycle_changes", "customer_grades", "dead_letters", "ticks",
    )  # fmt: skip
    return Settings.model_validate(
        {
            "app_id": name,
            "kafka_bootstrap_servers": kafka,
            "partitions": PARTITIONS,
            **{f"topic_{topic}": f"{name}-{topic}" for topic in topics},
        }
    )


async def create_inputs(settings: Settings) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        names = settings.input_topics().values()
        await admin.create_topics([NewTopic(name, PARTITIONS, 1) for name in names])
    finally:
        await admin.close()


async def delete_topics(settings: Settings) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        mine = [spec.name for spec in expected_topics(settings) if spec.name in existing]
        await admin.delete_topics(mine)
    finally:
        await admin.close()


def busiest() -> list[str]:
    """The processes using the most CPU at the start (what else ran)."""
    ps = subprocess.run(
        ["ps", "-eo", "pcpu,etime,comm", "--sort=-pcpu"],
        capture_output=True,
        text=True,
        check=False,
    )
    return [line.strip() for line in ps.stdout.splitlines()[1:9]]


def commit() -> str:
    git = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    return git.stdout.strip()


if __name__ == "__main__":
    raise SystemExit(main())
