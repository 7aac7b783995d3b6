"""Replay: the grading of the live worker, over a file, with no broker.

Events are applied in file order. Time is stream time, the highest `occurred_at` seen
so far: as it passes a customer's due time, that customer is re-graded, exactly as the
live worker's sweep does. The same file and policy give byte-identical outputs.

The loop is the hot path of backfills and of the benchmark: it keeps per-line work to
a decode, one `apply` and, for the few events that change a grade, a write. A file is
fed in chunks, customer by customer (`Replayer.feed_chunk`), which writes exactly what
feeding it line by line (`Replayer.feed`) writes, in the same order, but applies each
customer's events with its state in the CPU's caches.

Every record written has a position, `Replayer.at` when it is written: its line's number,
or `END + partition` for what the final sweep writes. Records are written in position
order, and all of one position come from one partition: this is what lets
`streams.replay_jobs` grade partitions in separate processes and merge their files into
the very bytes one process writes.
"""

from __future__ import annotations

import gc
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

import orjson

from streams.contracts import check, customer_in, dead_letter, parse
from streams.core import engine, future
from streams.core.errors import Rejection
from streams.core.grading import grade
from streams.core.policy import Policy
from streams.core.state import CustomerState
from streams.schedule import DueIndex, partition_of
from streams.sources import Format, History, Mapping, open_history

# A decoded line in `Replayer.feed_chunk`: its number, bytes, event, event time, and how
# many of its partition's rising lines are at or before it.
_Line = tuple[int, bytes, dict[str, Any], int, int]
# A line as `feed_chunk` takes it: its number, bytes, and what `contracts.parse` made of it.
Line = tuple[int, bytes, Any]

# The position of what the final sweep writes, per partition: after every line.
END: Final = 1 << 62

# Lines per `feed_chunk` in `replay_file`: the more of each customer's events a chunk
# holds, the more of them are applied with its state hot; each line held costs ~1 KB
# (the line and its decoded event) until the chunk is done.
CHUNK_LINES: Final = 1 << 17
# Progress is told every this many lines plus one (a mask: a power of two minus one).
PROGRESS_LINES: Final = (1 << 15) - 1


def _first(item: tuple[Any, ...]) -> Any:
    return item[0]


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
    # Events at or after `Replayer.until`, left out (bootstrap: the live topics have them).
    later: int = 0


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
    # Apply only events before this time (None: all); those after are counted, not applied.
    until: int | None = None
    states: dict[str, CustomerState] = field(default_factory=dict)
    stats: ReplayStats = field(default_factory=ReplayStats)
    # Per partition: its stream time (highest event time read) and its due customers.
    times: dict[int, int] = field(default_factory=dict)
    dues: dict[int, DueIndex] = field(default_factory=dict)
    # The position of the record being written (the module's docstring).
    at: int = 0
    # Partition of each customer seen (murmur2 in Python costs microseconds a call).
    _partitions: dict[str, int] = field(default_factory=dict, repr=False)
    # Events from the future of their partition's stream time: refused as the worker
    # refuses them, by the policy's bound (`streams.core.future`).
    ahead: future.FutureCheck = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.ahead = future.FutureCheck(future.ahead_of_stream_seconds(self.policy))

    def feed(self, line_no: int, raw: bytes) -> None:
        # One line at a time: for callers that have no more, and the plain reading of
        # replay's semantics that `feed_chunk` must match (tests/replay).
        stats = self.stats
        self.at = line_no
        read = self._read(raw, parse(raw))
        if read is None:
            return
        if isinstance(read, Rejection):
            self._reject(line_no, raw, read)
            return
        event, customer_id, event_time, partition = read
        index = self.dues.get(partition)
        if index is None:
            index = self.dues[partition] = DueIndex()
        if event_time > self.times.get(partition, event_time - 1):
            self.times[partition] = event_time
            due = index.next_due()
            if due is not None and due <= event_time:
                self._sweep(partition, event_time)
        state = self.states.get(customer_id)
        # A customer has a state once one of its events is applied (a refusal changes
        # nothing), so one whose every event was refused gets no grade.
        known = state is not None
        if state is None:
            state = engine.new_state(customer_id)
        due_before = state.due
        result = engine.apply(state, event, self.policy, at=event_time)
        if result.rejection is not None:
            self._reject(line_no, raw, result.rejection)
            return
        if result.duplicate:
            stats.duplicates += 1
            return
        if not known:
            self.states[customer_id] = state
        stats.applied += 1
        if result.outputs:
            self._emit_all(result.outputs)
        # The index holds every customer's state.due (set after each apply and wake-up),
        # so an unchanged due needs no call (set would find it equal and return).
        if state.due != due_before:
            index.set(customer_id, state.due)

    def _read(
        self, raw: bytes, parsed: Any
    ) -> tuple[dict[str, Any], str, int, int] | Rejection | None:
        """Count and check one line (`parsed`: `contracts.parse(raw)`); for an event, move
        stream time and say (event, customer_id, event time, partition); None for an event
        at or after `until`. An event from the future of its partition's stream time is
        refused here, in line order (as `feed_chunk`'s first pass reads them), before it
        moves any time."""
        stats = self.stats
        stats.lines += 1
        decoded = parsed if isinstance(parsed, Rejection) else check(parsed, raw)
        if isinstance(decoded, Rejection):
            return decoded
        event, _, customer_id, _ = decoded
        event_time = engine.event_time(event)
        if self.until is not None and event_time >= self.until:
            stats.later += 1
            return None
        partition = self.partition(customer_id)
        ahead = self.ahead
        if ahead.refuses(partition, event_time, self.times.get(partition)):
            return future.rejection(event["occurred_at"], ahead.ahead_seconds)
        if stats.stream_time is None or event_time > stats.stream_time:
            stats.stream_time = event_time
        return event, customer_id, event_time, partition

    def partition(self, customer_id: str) -> int:
        """The partition of the worker's topics `customer_id`'s events are on."""
        if self.partitions == 1:
            return 0
        partition = self._partitions.get(customer_id)
        if partition is None:
            partition = self._partitions[customer_id] = partition_of(customer_id, self.partitions)
        return partition

    def job_of(self, customer_id: str | None, jobs: int) -> int:
        """Which of `jobs` processes grades a line of `customer_id`: partitions are dealt
        round the jobs; a line that names no customer is job 0's."""
        return 0 if customer_id is None else self.partition(customer_id) % jobs

    def feed_chunk(self, lines: list[Line]) -> None:
        """`feed` each of `lines` (numbered, in file order) in turn: the same states,
        statistics and bytes written, computed customer by customer.

        Why: once the states outgrow the CPU's caches, feeding line by line reads a cold
        state for nearly every event; here each customer's events are applied back to
        back with its state hot (17 -> 14 µs an event on the benchmark's 28k customers).
        Why it is the same: a customer's grading depends on its own events and on the
        lines at which its partition's stream time passes its due times, nothing else.
        Pass 1 decodes every line in order and records the lines at which each
        partition's stream time rises (the only lines at which `feed` sweeps). Pass 2
        runs each customer through its events, sweeping it at the first rising line whose
        time reaches its due, as `feed` would (and the customers with no event here whose
        due is reached). Outputs and dead letters are then written in `feed`'s order:
        by line; on a line, the sweep (by due, then customer, as the due index pops) before
        the line's own event.
        """
        stats = self.stats
        # Pass 1, in line order: decode, stream time, the rising lines per partition.
        by_customer: dict[str, list[_Line]] = {}
        rise_lines: dict[int, list[int]] = {}
        rise_times: dict[int, list[int]] = {}
        dead: list[tuple[int, bytes, Rejection]] = []
        for line_no, raw, parsed in lines:
            read = self._read(raw, parsed)
            if read is None:
                continue
            if isinstance(read, Rejection):
                dead.append((line_no, raw, read))
                continue
            event, customer_id, event_time, partition = read
            lines_p = rise_lines.get(partition)
            if lines_p is None:
                lines_p = rise_lines[partition] = []
                rise_times[partition] = []
                self._due(partition)
            if event_time > self.times.get(partition, event_time - 1):
                self.times[partition] = event_time
                lines_p.append(line_no)
                rise_times[partition].append(event_time)
            line = (line_no, raw, event, event_time, len(lines_p))
            mine = by_customer.get(customer_id)
            if mine is None:
                by_customer[customer_id] = [line]
            else:
                mine.append(line)

        # Pass 2, customer by customer. Keys put the outputs back in `feed`'s order:
        # (line, 0, due, customer, n) for a sweep, (line, 1, n) for the line's event.
        outs: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        # Customers with no event here whose due this chunk's stream time reaches (those
        # with events are popped too, and `_run` sets their due again).
        quiet: list[str] = []
        for partition, times in rise_times.items():
            if times:
                for customer_id in self.dues[partition].pop_due(times[-1]):
                    if customer_id not in by_customer:
                        quiet.append(customer_id)
        no_events: list[_Line] = []
        for customer_id in quiet:
            self._run(customer_id, no_events, rise_lines, rise_times, outs, dead)
        for customer_id, mine in by_customer.items():
            self._run(customer_id, mine, rise_lines, rise_times, outs, dead)
            mine.clear()  # free the events now, while they are in the cache

        # `feed`'s order of writes, and of first counts in the statistics' Counters.
        outs.sort(key=_first)
        for key, output in outs:
            self.at = key[0]
            stats.outputs[output["type"]] += 1
            self.emit(output)
        dead.sort(key=_first)
        for line_no, raw, rejection in dead:
            self._reject(line_no, raw, rejection)

    def _run(
        self,
        customer_id: str,
        mine: list[_Line],
        rise_lines: dict[int, list[int]],
        rise_times: dict[int, list[int]],
        outs: list[tuple[tuple[Any, ...], dict[str, Any]]],
        dead: list[tuple[int, bytes, Rejection]],
    ) -> None:
        """One customer through its decoded lines of a chunk (`mine`) and
        through its partition's rising lines (`feed_chunk`)."""
        stats, policy = self.stats, self.policy
        partition = self.partition(customer_id)
        lines, times = rise_lines[partition], rise_times[partition]
        state = self.states.get(customer_id)
        known = state is not None  # as in `feed`: a state once an event is applied
        if state is None:
            state = engine.new_state(customer_id)
        k = 0  # the first rising line not passed yet
        for line_no, raw, event, event_time, rises in mine:
            if known:
                self._sweep_one(state, lines, times, k, rises, outs)
            result = engine.apply(state, event, policy, at=event_time)
            k = rises
            if result.rejection is not None:
                dead.append((line_no, raw, result.rejection))
                continue
            if result.duplicate:
                stats.duplicates += 1
                continue
            if not known:
                self.states[customer_id] = state
                known = True
            stats.applied += 1
            for n, output in enumerate(result.outputs):
                outs.append(((line_no, 1, n), output))
        if not known:
            return
        self._sweep_one(state, lines, times, k, len(lines), outs)
        self._due(partition).set(customer_id, state.due)

    def _sweep_one(
        self,
        state: CustomerState,
        lines: list[int],
        times: list[int],
        k: int,
        end: int,
        outs: list[tuple[tuple[Any, ...], dict[str, Any]]],
    ) -> None:
        """Sweep one customer as `feed` would at each of the rising lines ``k..end-1``
        whose stream time reaches its due (times rise, so the last one says whether any
        does: the search runs only then, and only between the customer's own events)."""
        while state.due is not None and k < end and times[end - 1] >= state.due:
            j = bisect_left(times, state.due, k, end)
            due, as_of = state.due, state.as_of
            for n, output in enumerate(engine.advance(state, times[j], self.policy)):
                outs.append(((lines[j], 0, due, state.customer_id, n), output))
            if state.as_of != as_of:
                self.stats.regraded_by_time += 1
            k = j + 1

    def _due(self, partition: int) -> DueIndex:
        index = self.dues.get(partition)
        if index is None:
            index = self.dues[partition] = DueIndex()
        return index

    def sweep(self, now: int) -> None:
        """Re-grade every customer whose due time is at or before `now`."""
        for partition in sorted(self.dues):
            self.at = END + partition
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
        states = self.states
        self.stats.customers = len(states)
        policy = self.policy
        for customer_id in sorted(states):
            state = states[customer_id]
            if as_of is None:
                yield engine.snapshot(state, policy)
            else:
                yield grade(state, max(as_of, state.as_of), policy)

    def _emit_all(self, outputs: Iterable[dict[str, Any]]) -> None:
        for output in outputs:
            self.stats.outputs[output["type"]] += 1
            self.emit(output)

    def _reject(self, line_no: int, raw: bytes, rejection: Rejection) -> None:
        self.at = line_no
        self.stats.dead_letters[rejection.code] += 1
        source = {"file": self.source_name, "line": line_no}
        self.dead(dead_letter(raw, None, source, rejection))


def read_lines(stream: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    """Numbered lines, without their line ends (1-based, as editors count). A blank line
    is a record too: the worker dead-letters an empty value, and so does replay."""
    for number, line in enumerate(stream, start=1):
        yield number, line.rstrip(b"\r\n")


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
    chunk_lines: int = CHUNK_LINES,
    fmt: Format | None = None,
    mapping: Mapping | None = None,
    until: int | None = None,
) -> ReplayStats:
    """Replay `source` into the three output files in this process; `progress` gets
    bytes read so far (`streams.replay_jobs` runs it on several processes).

    `partitions`: keep stream time per partition of this many, as a worker on topics
    with that many partitions does (1: one stream time for the whole file).
    `finished` gets the replayer at the end, with its final states (the benchmark's).
    `chunk_lines`: lines fed at a time (`Replayer.feed_chunk`); the outputs do not
    depend on it. `fmt` and `mapping`: how to read it (`streams.sources`). `until`: apply
    only the events before it (`Replayer.until`).
    """
    with ExitStack() as stack:
        history = open_history(source, stack, fmt, mapping)
        out_f = stack.enter_context(out.open("wb"))
        dead_f = stack.enter_context(dead_letters.open("wb"))
        replayer = Replayer(
            policy,
            jsonl_writer(out_f),
            jsonl_writer(dead_f),
            source_name=str(source),
            partitions=partitions,
            until=until,
        )
        feed_history(replayer, history, chunk_lines, progress)
        write_snap = jsonl_writer(stack.enter_context(snapshot.open("wb")))
        for grade in replayer.finish(as_of):
            write_snap(grade)
    if finished is not None:
        finished(replayer)
    return replayer.stats


def feed_history(
    replayer: Replayer,
    history: History,
    chunk_lines: int = CHUNK_LINES,
    progress: Callable[[int], None] | None = None,
    share: tuple[int, int] = (0, 1),
) -> None:
    """Feed the lines (or rows) of `history` to `replayer` in chunks: with `share`
    (j, n), only job j's of n (`Replayer.job_of`); `progress` gets the bytes read now
    and then, and at the end."""
    j, jobs = share
    chunk: list[Line] = []
    position = history.position
    # No cyclic garbage collection while the lines are fed: the loop makes no cycles
    # (refcounting frees its garbage), yet the collector's passes over the growing
    # states cost ~10% of a 1M-event replay. Re-enabled after, as it was.
    collecting = gc.isenabled()
    gc.disable()
    try:
        if history.lines is not None:
            # read_lines, written out: a generator's resume and a tuple per line cost here.
            for line_no, line in enumerate(history.lines, start=1):
                raw = line.rstrip(b"\r\n")
                if progress is not None and not line_no & PROGRESS_LINES:
                    progress(position())
                parsed = parse(raw)
                if jobs > 1 and replayer.job_of(customer_in(parsed), jobs) != j:
                    continue
                chunk.append((line_no, raw, parsed))
                if len(chunk) >= chunk_lines:
                    replayer.feed_chunk(chunk)
                    chunk = []
        else:
            assert history.rows is not None
            for row in history.rows:
                if progress is not None and not row[0] & PROGRESS_LINES:
                    progress(position())
                if jobs > 1 and replayer.job_of(customer_in(row[2]), jobs) != j:
                    continue
                chunk.append(row)
                if len(chunk) >= chunk_lines:
                    replayer.feed_chunk(chunk)
                    chunk = []
        replayer.feed_chunk(chunk)
    finally:
        if collecting:
            gc.enable()
    if progress is not None:
        progress(position())
