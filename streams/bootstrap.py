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
from contextlib import contextmanager
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


@dataclass
class Bootstrap:
    """One bootstrap: `prepare` (checks, offsets at T), `grade` (replay's jobs, states
    kept in a work directory), `hand_over` (to Kafka); `run` does all three."""

    settings: Settings
    policy: Policy
    source: Path
    until: int
    dead_letters: Path
    jobs: int
    fmt: Format | None = None
    mapping: Mapping | None = None
    force: bool = False
    publish_history: bool = False
    seconds: dict[str, float] = field(default_factory=dict)

    def prepare(self) -> dict[TopicPartition, int]:
        """Check the topics and the app id; the offsets at T (`handover.HandoverError`)."""
        with self._timed("prepare"):
            return asyncio.run(handover.prepare(self.settings, self.until * 1000, self.force))

    def grade(self, work: Path, progress: Callable[[int], None] | None = None) -> ReplayStats:
        """Replay's jobs over the history up to T, each keeping its states in `work`."""
        with self._timed("grade"):
            return replay_parallel(
                self.source,
                self.policy,
                work / "out.jsonl",
                work / "snapshot.jsonl",
                self.dead_letters,
                progress=progress,
                partitions=self.settings.partitions,
                jobs=self.jobs,
                fmt=self.fmt,
                mapping=self.mapping,
                until=self.until,
                finished=keep_states(work),
            )

    def hand_over(self, work: Path, offsets: dict[TopicPartition, int]) -> handover.Handed:
        """What `grade` left in `work` to Kafka (`handover.HandoverError`)."""
        out = work / "out.jsonl"
        with self._timed("hand over"):
            return asyncio.run(
                handover.hand_over(
                    self.settings,
                    offsets,
                    table_records(work),
                    partition_times(work),
                    grade_records(work / "snapshot.jsonl"),
                    output_records(out, self.settings) if self.publish_history else iter(()),
                    self.force,
                )
            )

    def run(self, progress: Callable[[int], None] | None = None) -> Bootstrapped:
        offsets = self.prepare()
        with tempfile.TemporaryDirectory(prefix=".bootstrap-", dir=self.dead_letters.parent) as tmp:
            stats = self.grade(Path(tmp), progress)
            handed = self.hand_over(Path(tmp), offsets)
        return Bootstrapped(stats, handed, offsets, self.seconds)

    @contextmanager
    def _timed(self, phase: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] = time.perf_counter() - started
