"""Replay: the grading of the live worker, over a file, with no broker.

Events are applied in file order. Time is stream time, the highest `occurred_at` seen
so far: as it passes a customer's due time, that customer is re-graded, exactly as the
live worker's sweep does. The same file and policy give byte-identical outputs.

The loop is the hot path of backfills and of the benchmark: it keeps per-line work to
a decode, one `apply` and, for the few events that change a grade, a write.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from streams.contracts import dead_letter, decode
from streams.core import engine
from streams.core.errors import Rejection
from streams.core.grading import grade
from streams.core.policy import Policy
from streams.core.state import CustomerState
from streams.schedule import DueIndex, partition_of


@dataclass
class ReplayStats:
    """What a replay did, for the summary table and the tests."""

    lines: int = 0
    applied: int = 0
    duplicates: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)
    outputs: Counter[str] = field(default_factory=Counter)
    regraded_by_time: int = 0
    customers: int = 0
    stream_time: int | None = None


@dataclass
class Replayer:
    """The replay engine, apart from files: feed it lines, then `finish`.

    Output events and dead letters go to the callables given, in processing order.
    """

    policy: Policy
    emit: Callable[[dict[str, Any]], None]
    dead: Callable[[dict[str, Any]], None]
    source_name: str = "-"
    # Under the event clock time is kept per partition, as the worker keeps it: with the
    # worker's partition count, replay sees the time each customer's partition sees.
    partitions: int = 1
    states: dict[str, CustomerState] = field(default_factory=dict)
    stats: ReplayStats = field(default_factory=ReplayStats)
    # Per partition: its stream time (highest event time read) and its due customers.
    times: dict[int, int] = field(default_factory=dict)
    dues: dict[int, DueIndex] = field(default_factory=dict)

    def feed(self, line_no: int, raw: bytes) -> None:
        # The hot path of a replay: per line a decode, an `apply` and a handful of dict
        # operations, written out (no helper calls) since each Python call costs.
        stats = self.stats
        stats.lines += 1
        decoded = decode(raw)
        if isinstance(decoded, Rejection):
            self._reject(line_no, raw, decoded)
            return
        event, _, customer_id, _ = decoded
        event_time = engine.event_time(event)
        if stats.stream_time is None or event_time > stats.stream_time:
            stats.stream_time = event_time
        partition = 0 if self.partitions == 1 else partition_of(customer_id, self.partitions)
        index = self.dues.get(partition)
        if index is None:
            index = self.dues[partition] = DueIndex()
        if event_time > self.times.get(partition, event_time - 1):
            self.times[partition] = event_time
            due = index.next_due()
            if due is not None and due <= event_time:
                self._sweep(partition, event_time)
        state = self.states.get(customer_id)
        if state is None:
            state = self.states[customer_id] = engine.new_state(customer_id)
        due_before = state.due
        result = engine.apply(state, event, self.policy, at=event_time)
        if result.rejection is not None:
            self._reject(line_no, raw, result.rejection)
            return
        if result.duplicate:
            stats.duplicates += 1
            return
        stats.applied += 1
        if result.outputs:
            self._emit_all(result.outputs)
        # The index holds every customer's state.due (set after each apply and wake-up),
        # so an unchanged due needs no call (set would find it equal and return).
        if state.due != due_before:
            index.set(customer_id, state.due)

    def _due(self, partition: int) -> DueIndex:
        index = self.dues.get(partition)
        if index is None:
            index = self.dues[partition] = DueIndex()
        return index

    def sweep(self, now: int) -> None:
        """Re-grade every customer whose due time is at or before `now`."""
        for partition in sorted(self.dues):
            self._sweep(partition, now)

    def _sweep(self, partition: int, now: int) -> None:
        index = self._due(partition)
        for customer_id in index.pop_due(now):
            state = self.states[customer_id]
            as_of = state.as_of
            self._emit_all(engine.advance(state, now, self.policy))
            if state.as_of != as_of:  # a wake-up on a lower bound may process nothing
                self.stats.regraded_by_time += 1
            index.set(customer_id, state.due)

    def finish(self, as_of: int | None = None) -> Iterator[dict[str, Any]]:
        """Yield every customer's final grade, by id.

        With `as_of`: sweep to it first (emitting what time causes up to then), then
        yield each customer's grade at `as_of` (`grading.grade`, pure; a customer whose
        last event is later than `as_of` is graded at its own as_of: time never goes
        back). Without: each customer's snapshot, at its own as_of.
        """
        if as_of is not None:
            self.sweep(as_of)
        self.stats.customers = len(self.states)
        policy = self.policy
        for customer_id in sorted(self.states):
            state = self.states[customer_id]
            if as_of is None:
                yield engine.snapshot(state, policy)
            else:
                yield grade(state, max(as_of, state.as_of), policy)

    def _emit_all(self, outputs: Iterable[dict[str, Any]]) -> None:
        for output in outputs:
            self.stats.outputs[output["type"]] += 1
            self.emit(output)

    def _reject(self, line_no: int, raw: bytes, rejection: Rejection) -> None:
        self.stats.dead_letters[rejection.code] += 1
        source = {"file": self.source_name, "line": line_no}
        self.dead(dead_letter(raw, None, source, rejection))


def read_lines(stream: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    """Numbered non-blank lines, without their line ends (1-based, as editors count)."""
    for number, line in enumerate(stream, start=1):
        raw = line.rstrip(b"\r\n")
        if raw.strip():
            yield number, raw


def jsonl_writer(stream: IO[bytes]) -> Callable[[dict[str, Any]], None]:
    # Sorted keys make the bytes independent of dict construction order.
    dumps, write = orjson.dumps, stream.write
    option = orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE

    def write_one(record: dict[str, Any]) -> None:
        write(dumps(record, option=option))

    return write_one


def replay_file(
    source: Path,
    policy: Policy,
    out: Path,
    snapshot: Path,
    dead_letters: Path,
    as_of: int | None = None,
    progress: Callable[[int], None] | None = None,
    partitions: int = 1,
    finished: Callable[[Replayer], None] | None = None,
) -> ReplayStats:
    """Replay `source` into the three output files; `progress` gets bytes read so far.

    `partitions`: keep stream time per partition of this many, as a worker on topics
    with that many partitions does (1: one stream time for the whole file).
    `finished` gets the replayer at the end, with its final states (the benchmark's).
    """
    with (
        source.open("rb") as src,
        out.open("wb") as out_f,
        snapshot.open("wb") as snap_f,
        dead_letters.open("wb") as dead_f,
    ):
        replayer = Replayer(
            policy,
            jsonl_writer(out_f),
            jsonl_writer(dead_f),
            source_name=str(source),
            partitions=partitions,
        )
        feed = replayer.feed
        count = 0
        # No cyclic garbage collection while the lines are fed: the loop makes no cycles
        # (refcounting frees its garbage), yet the collector's passes over the growing
        # states cost ~10% of a 1M-event replay. Re-enabled after, as it was.
        collecting = gc.isenabled()
        gc.disable()
        try:
            # read_lines, written out: a generator's resume and a tuple per line cost here.
            for line_no, line in enumerate(src, start=1):
                raw = line.rstrip(b"\r\n")
                if raw.strip():
                    feed(line_no, raw)
                    count += 1
                    # Reporting every line would cost more than the grading of it.
                    if progress is not None and count % 8192 == 0:
                        progress(src.tell())
        finally:
            if collecting:
                gc.enable()
        write_snap = jsonl_writer(snap_f)
        for grade in replayer.finish(as_of):
            write_snap(grade)
        if progress is not None:
            progress(src.tell())
    if finished is not None:
        finished(replayer)
    return replayer.stats
