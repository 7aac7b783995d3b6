"""`gradestream bootstrap`: start the live system from a history (streams/bootstrap.py)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from streams.cli_support import (
    HistoryFormat,
    PolicyOption,
    console,
    fail,
    file_progress,
    policy_or_exit,
    rfc3339,
    settings_or_exit,
)

if TYPE_CHECKING:
    from streams.bootstrap import Bootstrap
    from streams.replay import ReplayStats


def bootstrap(
    source: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, help="History: JSONL events, CSV or Parquet rows."
        ),
    ],
    until: Annotated[
        str,
        typer.Option(
            help="The instant T (RFC 3339): events before it are graded from the history; "
            "the workers read the live input topics from T on."
        ),
    ],
    policy: PolicyOption = None,
    fmt: Annotated[HistoryFormat | None, typer.Option("--format", help="As for replay.")] = None,
    mapping: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="As for replay.")
    ] = None,
    jobs: Annotated[
        int | None, typer.Option(min=1, help="Grading processes (default: one per CPU).")
    ] = None,
    dead_letters: Annotated[
        Path, typer.Option("--dead-letters", help="The history's rejected lines or rows.")
    ] = Path("bootstrap.dlq.jsonl"),
    publish_history: Annotated[
        bool,
        typer.Option(help="Also send the history's tier, churn and lifecycle changes."),
    ] = False,
    force: Annotated[bool, typer.Option(help="Overwrite the state an app id already has.")] = False,
) -> None:
    """Grade a history up to T and hand the states to the live workers (the table's
    changelog, customer-grades, the group's offsets at T), configured by GRADESTREAM_*
    variables as the worker is; a plain `gradestream worker` then continues from T."""

    from streams.bootstrap import Bootstrap
    from streams.handover import HandoverError
    from streams.replay_jobs import default_jobs
    from streams.sources import Format, HistoryError, load_mapping

    settings = settings_or_exit()
    the_policy = policy_or_exit(policy if policy is not None else settings.policy)
    try:
        the_mapping = load_mapping(mapping) if mapping is not None else None
    except HistoryError as exc:
        fail(f"--mapping refused: {exc}")
    job = Bootstrap(
        settings,
        the_policy,
        source,
        rfc3339(until),
        dead_letters,
        default_jobs(settings.partitions) if jobs is None else min(jobs, settings.partitions),
        fmt=Format(fmt.value) if fmt is not None else None,
        mapping=the_mapping,
        force=force,
        publish_history=publish_history,
    )
    try:
        offsets = job.prepare()
        with tempfile.TemporaryDirectory(prefix=".bootstrap-", dir=dead_letters.parent) as tmp:
            stats = _graded(job, Path(tmp))
            handed = job.hand_over(Path(tmp), offsets)
    except HandoverError as exc:
        fail(f"bootstrap refused: {exc}")
    table = Table(title=f"bootstrap of app id {settings.app_id} from {source} up to {until}")
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("lines read", f"{stats.lines:,}")
    table.add_row("events applied (before T)", f"{stats.applied:,}")
    table.add_row("events at or after T (left to the live topics)", f"{stats.later:,}")
    table.add_row("duplicates (applied once)", f"{stats.duplicates:,}")
    for code, count in sorted(stats.dead_letters.items()):
        table.add_row(f"dead letters: {code}", f"{count:,}")
    table.add_row("customers: states to the table's changelog", f"{handed.states:,}")
    table.add_row("customers: grades to customer-grades", f"{handed.grades:,}")
    table.add_row("old table entries deleted first (--force)", f"{handed.tombstones:,}")
    table.add_row("historical output events published", f"{handed.outputs:,}")
    table.add_row("input partitions positioned at T", f"{handed.markers:,}")
    for phase, seconds in job.seconds.items():
        table.add_row(f"seconds: {phase}", f"{seconds:.2f}")
    console.print(table)
    console.print(f"dead letters: {dead_letters}; start the workers: gradestream worker")


def _graded(job: Bootstrap, work: Path) -> ReplayStats:
    """The bootstrap's grading under a progress bar; a history that cannot be read ends
    the command in one line (said once the bar is gone)."""
    from streams.sources import HistoryError

    refusal = None
    with file_progress() as bar:
        task = bar.add_task(f"grading {job.source.name}", total=job.source.stat().st_size)
        try:
            return job.grade(work, lambda read: bar.update(task, completed=read))
        except HistoryError as exc:
            refusal = f"{job.source} cannot be read: {exc}"
    fail(refusal)
