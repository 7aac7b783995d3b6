"""`gradestream bootstrap`: a history graded up to an instant T, handed to the live workers.

The grading is replay's, on every CPU (`streams.replay_jobs`): the same jobs, each of
which also writes its final states when it is done (`keep_states`). The states go to the
table's changelog in the form the worker keeps them (`streams.app.states.frame`, with no
input offsets applied: the history is no Kafka topic), each on the partition the worker's
table uses (murmur2 of customer_id over the worker's partition count, as replay's
`Replayer.partition`); each input partition gets a progress marker, the offset at T and
its partition's stream time (`streams.app.progress`). The Kafka side is
`streams.handover`.

Events at or after T are left out: the live topics have them, from the offsets at T on.
The worker then continues exactly as replay would have gone on (docs/operations.md,
"Backfill").
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from aiokafka import TopicPartition

from streams import handover
from streams.app.states import frame
from streams.core.policy import Policy
from streams.core.state import encode
from streams.replay import Replayer, ReplayStats
from streams.replay_jobs import Finished, replay_parallel
from streams.settings import Settings
from streams.sources import Format, Mapping


@dataclass
class Bootstrapped:
    """What a bootstrap did, for the summary and the benchmark."""

    stats: ReplayStats
    handed: handover.Handed
    offsets: dict[TopicPartition, int]
    seconds: dict[str, float] = field(default_factory=dict)


def keep_states(work: Path) -> Finished:
    """The jobs' end: write the job's states as `partition TAB key TAB encoded state`
    lines (keys as JSON strings, so no tab or newline is in them; an encoded state is
    orjson, which writes none), and its partitions' stream times."""

    def finished(replayer: Replayer, j: int) -> None:
        with (work / f"states-{j}").open("wb") as f:
            for customer_id, state in replayer.states.items():
                partition = replayer.partition(customer_id)
                f.write(b"%d\t%s\t%s\n" % (partition, orjson.dumps(customer_id), encode(state)))
        times = orjson.dumps(replayer.times, option=orjson.OPT_NON_STR_KEYS)
        (work / f"times-{j}.json").write_bytes(times)

    return finished


def table_records(work: Path) -> Iterator[tuple[int, bytes, bytes]]:
    """(partition, key, table value) of every customer the jobs kept."""
    for path in sorted(work.glob("states-*")):
        with path.open("rb") as f:
            for line in f:
                partition, key, encoded = line.rstrip(b"\n").split(b"\t", 2)
                yield int(partition), orjson.loads(key).encode(), frame({}, encoded)


def partition_times(work: Path) -> dict[int, int]:
    """Each partition's stream time at the end of the history (jobs share none)."""
    times: dict[int, int] = {}
    for path in work.glob("times-*.json"):
        times.update({int(p): t for p, t in orjson.loads(path.read_bytes()).items()})
    return times


def grade_records(snapshot: Path) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) of each grade of replay's snapshot file: the bytes the worker sends."""
    with snapshot.open("rb") as f:
        for line in f:
            grade = line.rstrip(b"\n")
            yield orjson.loads(grade)["customer_id"].encode(), grade


def output_records(out: Path, settings: Settings) -> Iterator[tuple[str, bytes, bytes]]:
    """(topic, key, value) of each output event of replay's output file, in its order."""
    topics = {
        "tier_changed": settings.topic_tier_changes,
        "churn_risk_changed": settings.topic_churn_risk,
        "lifecycle_changed": settings.topic_lifecycle_changes,
    }
    with out.open("rb") as f:
        for line in f:
            event = line.rstrip(b"\n")
            parsed = orjson.loads(event)
            yield topics[parsed["type"]], parsed["customer_id"].encode(), event


def bootstrap(
    settings: Settings,
    policy: Policy,
    source: Path,
    until: int,
    dead_letters: Path,
    jobs: int,
    fmt: Format | None = None,
    mapping: Mapping | None = None,
    force: bool = False,
    publish_history: bool = False,
    progress: Callable[[int], None] | None = None,
) -> Bootstrapped:
    """Check, grade, hand over (see the module); `handover.HandoverError` when refused."""
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    offsets = asyncio.run(handover.prepare(settings, until * 1000, force))
    seconds["prepare"] = time.perf_counter() - started
    with tempfile.TemporaryDirectory(prefix=".bootstrap-", dir=dead_letters.parent) as tmp:
        work = Path(tmp)
        out, snapshot = work / "out.jsonl", work / "snapshot.jsonl"
        started = time.perf_counter()
        stats = replay_parallel(
            source,
            policy,
            out,
            snapshot,
            dead_letters,
            progress=progress,
            partitions=settings.partitions,
            jobs=jobs,
            fmt=fmt,
            mapping=mapping,
            until=until,
            finished=keep_states(work),
        )
        seconds["grade"] = time.perf_counter() - started
        started = time.perf_counter()
        handed = asyncio.run(
            handover.hand_over(
                settings,
                offsets,
                table_records(work),
                partition_times(work),
                grade_records(snapshot),
                output_records(out, settings) if publish_history else iter(()),
                force,
            )
        )
        seconds["hand over"] = time.perf_counter() - started
    return Bootstrapped(stats, handed, offsets, seconds)
