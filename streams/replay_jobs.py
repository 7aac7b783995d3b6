"""Replay on every CPU: the partitions of a file graded by several processes at once.

Under the event clock a customer's grading depends on its own events and on its
partition's stream time, nothing else (`streams.replay`). So the partitions of the
worker's topics (murmur2 of customer_id, `--partitions` of them) are independent: job
``j`` of ``n`` grades the partitions ``p`` with ``p % n == j``. Each job reads the whole
file, parses every line once to learn its customer, and feeds its own lines to a
`Replayer` of its own; a line that names no customer (not JSON, no customer_id) is job
0's, which dead-letters it as one process would (`Replayer.job_of`).

Each job writes its records to files of its own, with their positions (`Replayer.at`);
the parent merges the files by position (grades by customer_id), which gives the very
bytes `replay_file` writes in one process, whatever the number of jobs.

Jobs are forked: they inherit the policy and the compiled core, with nothing to pickle
but their results (statistics and positions).
"""

from __future__ import annotations

import gc
import heapq
import multiprocessing
import os
import tempfile
import traceback
from array import array
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Final

from streams.core.policy import Policy
from streams.replay import Replayer, ReplayStats, feed_history, jsonl_writer, replay_file
from streams.sources import Format, Mapping, open_history

# The files a job writes, and what `replay_parallel` merges them into.
_KINDS: Final = ("out", "dead", "snap")


def default_jobs(partitions: int) -> int:
    """One job per CPU this process may run on, at most one per partition."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(cpus or 1, partitions))


# Called in each job with its replayer, once it is done, and the job's number.
Finished = Callable[[Replayer, int], None]


@dataclass(frozen=True)
class _Reading:
    """What each job reads, and what it does at the end (jobs are forked: nothing here is
    pickled, a closure will do)."""

    source: Path
    fmt: Format | None
    mapping: Mapping | None
    until: int | None
    finished: Finished | None


@dataclass
class _Done:
    """What a job sends back: its statistics and the position of each record it wrote."""

    stats: ReplayStats
    out: bytes  # array("q") of positions, one per output event
    dead: bytes  # the same, per dead letter
    snap: list[str]  # customer_id of each grade


def replay_parallel(
    source: Path,
    policy: Policy,
    out: Path,
    snapshot: Path,
    dead_letters: Path,
    as_of: int | None = None,
    progress: Callable[[int], None] | None = None,
    partitions: int = 1,
    jobs: int = 1,
    fmt: Format | None = None,
    mapping: Mapping | None = None,
    until: int | None = None,
    finished: Finished | None = None,
) -> ReplayStats:
    """`replay_file` on `jobs` processes (at most one per partition): the same bytes.

    `until`: apply only the events before it (`Replayer.until`). `finished` is called in
    each job, with its replayer (its final states) and its number, once it has written
    its grades (bootstrap hands the states to the worker's table from there).
    """
    jobs = max(1, min(jobs, partitions))
    if jobs == 1:
        return replay_file(
            source, policy, out, snapshot, dead_letters, as_of, progress, partitions,
            fmt=fmt, mapping=mapping, until=until,
            finished=None if finished is None else lambda replayer: finished(replayer, 0),
        )  # fmt: skip
    with ExitStack() as stack:  # a file no job could read fails here, before any starts
        open_history(source, stack, fmt, mapping)
    reading = _Reading(source, fmt, mapping, until, finished)
    context = multiprocessing.get_context("fork")
    read = [context.Value("q", 0, lock=False) for _ in range(jobs)]
    with tempfile.TemporaryDirectory(prefix=".replay-", dir=out.parent) as tmp:
        work = Path(tmp)
        pipes, procs = [], []
        # What the parent holds is frozen out of the collector's reach: a collection in a
        # job would otherwise write to every inherited object and copy all their pages.
        gc.freeze()
        for j in range(jobs):
            receive, send = context.Pipe(duplex=False)
            args = (reading, policy, work, as_of, partitions, jobs, j, read[j], send)
            proc = context.Process(target=_job, args=args, name=f"replay-job-{j}", daemon=True)
            proc.start()
            send.close()
            pipes.append(receive)
            procs.append(proc)
        gc.unfreeze()
        done = _collect(pipes, procs, read, progress)
        stats = ReplayStats()
        for result in done:
            _add(stats, result.stats)
        _merge([_positioned(work, "out", j, array("q", d.out)) for j, d in enumerate(done)], out)
        _merge(
            [_positioned(work, "dead", j, array("q", d.dead)) for j, d in enumerate(done)],
            dead_letters,
        )
        _merge([_positioned(work, "snap", j, d.snap) for j, d in enumerate(done)], snapshot)
    return stats


def _collect(
    pipes: list[Connection],
    procs: list[Any],
    read: list[Any],
    progress: Callable[[int], None] | None,
) -> list[_Done]:
    """Each job's result, in job order; progress meanwhile (the mean of bytes read, as
    every job reads the whole file). A job that fails fails the replay, with its error."""
    results: dict[int, _Done] = {}
    waiting = dict(enumerate(pipes))
    try:
        while waiting:
            wait(list(waiting.values()), timeout=0.2)
            for j, conn in list(waiting.items()):
                if not conn.poll():  # True at the end of the pipe too: recv raises then
                    continue
                message: _Done | str
                try:
                    message = conn.recv()
                except EOFError:
                    message = f"replay job {j} died (exit code {procs[j].exitcode})"
                del waiting[j]
                if isinstance(message, str):
                    raise RuntimeError(message)
                results[j] = message
            if progress is not None:
                progress(sum(v.value for v in read) // len(read))
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
            proc.join()
    return [results[j] for j in range(len(pipes))]


def _job(
    reading: _Reading,
    policy: Policy,
    work: Path,
    as_of: int | None,
    partitions: int,
    jobs: int,
    j: int,
    read: Any,
    send: Connection,
) -> None:
    try:
        send.send(_grade_share(reading, policy, work, as_of, partitions, jobs, j, read))
    except BaseException:  # the parent shows it; a job has no console of its own
        send.send(f"replay job {j} failed:\n{traceback.format_exc()}")
    finally:
        send.close()


def _grade_share(
    reading: _Reading,
    policy: Policy,
    work: Path,
    as_of: int | None,
    partitions: int,
    jobs: int,
    j: int,
    read: Any,
) -> _Done:
    """Job `j`'s share of the replay: its partitions' lines, graded into its own files."""
    out_at, dead_at, snap_ids = array("q"), array("q"), []
    source, fmt, mapping = reading.source, reading.fmt, reading.mapping
    with ExitStack() as stack:
        history = open_history(source, stack, fmt, mapping)
        out_f = stack.enter_context(_path(work, "out", j).open("wb"))
        dead_f = stack.enter_context(_path(work, "dead", j).open("wb"))
        snap_f = stack.enter_context(_path(work, "snap", j).open("wb"))
        write_out, write_dead = jsonl_writer(out_f), jsonl_writer(dead_f)

        def emit(record: dict[str, Any]) -> None:
            out_at.append(replayer.at)
            write_out(record)

        def dead(record: dict[str, Any]) -> None:
            dead_at.append(replayer.at)
            write_dead(record)

        replayer = Replayer(policy, emit, dead, str(source), partitions, reading.until)

        def told(done: int) -> None:
            read.value = done

        feed_history(replayer, history, progress=told, share=(j, jobs))
        write_snap = jsonl_writer(snap_f)
        for grade in replayer.finish(as_of):
            snap_ids.append(grade["customer_id"])
            write_snap(grade)
    if reading.finished is not None:
        reading.finished(replayer, j)
    return _Done(replayer.stats, out_at.tobytes(), dead_at.tobytes(), snap_ids)


def _path(work: Path, kind: str, j: int) -> Path:
    return work / f"{kind}-{j}.jsonl"


def _positioned(work: Path, kind: str, j: int, keys: Iterable[Any]) -> Iterator[tuple[Any, bytes]]:
    """(position, line) of each record job `j` wrote to its `kind` file."""
    with _path(work, kind, j).open("rb") as f:
        yield from zip(keys, f, strict=True)


def _first(item: tuple[Any, bytes]) -> Any:
    return item[0]


def _merge(parts: list[Iterator[tuple[Any, bytes]]], target: Path) -> None:
    """Write the jobs' lines to `target` in position order (no two jobs share one)."""
    with target.open("wb") as f:
        f.writelines(line for _, line in heapq.merge(*parts, key=_first))


def _add(total: ReplayStats, part: ReplayStats) -> None:
    total.lines += part.lines
    total.applied += part.applied
    total.duplicates += part.duplicates
    total.dead_letters.update(part.dead_letters)
    total.outputs.update(part.outputs)
    total.regraded_by_time += part.regraded_by_time
    total.customers += part.customers
    total.later += part.later
    if part.stream_time is not None and (
        total.stream_time is None or part.stream_time > total.stream_time
    ):
        total.stream_time = part.stream_time
