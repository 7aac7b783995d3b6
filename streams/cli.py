"""The `gradestream` command. Typer parses and checks arguments (a bad one prints what is
wrong and exits 2); rich draws the progress bar and the summary tables."""

from __future__ import annotations

import time
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Final, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn
from rich.table import Table

from streams.core.errors import PolicyError
from streams.core.policy import Policy, load_policy
from streams.policy_diff import diff as policy_diff
from streams.settings import Settings

if TYPE_CHECKING:  # imported where used: a command loads only what it needs
    from streams.bootstrap import Bootstrap
    from streams.models.history import Summary
    from streams.replay import ReplayStats

app = typer.Typer(
    help="gradestream: a streaming customer grader (RFM, tiers, lifecycle, churn risk).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
policy_app = typer.Typer(help="Policy files: every threshold, bin, ladder and weight.")
app.add_typer(policy_app, name="policy")

console = Console(stderr=True)

# Replay keeps stream time per partition as a worker does: by default, as a worker
# does on topics it created with its default partition count.
DEFAULT_PARTITIONS: Final = Settings.model_fields["partitions"].default

PolicyOption = Annotated[
    Path | None,
    typer.Option(
        "--policy",
        exists=True,
        dir_okay=False,
        help="Policy file (TOML or YAML); default: the packaged default policy.",
    ),
]


def rfc3339(value: str) -> int:
    """Parse an RFC 3339 timestamp with an offset into epoch seconds."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r} is not an RFC 3339 timestamp: {exc}") from exc
    if parsed.tzinfo is None:
        raise typer.BadParameter(f"{value!r} has no UTC offset (add Z or +HH:MM)")
    return int(parsed.timestamp())


def fail(message: str, code: int = 2) -> NoReturn:
    """End the command with `message` as one line on stderr: plain text, never wrapped nor
    read as markup, so that a log collector or a test sees what is wrong in one piece. (A
    YAML parser's message spans lines: they are joined.)"""
    typer.echo(" ".join(line.strip() for line in message.splitlines()), err=True)
    raise typer.Exit(code)


def settings_or_exit() -> Settings:
    """The GRADESTREAM_* settings, after a warning line for each unknown GRADESTREAM_* name;
    refused settings end the command with one line naming each variable at fault."""
    import os

    from streams.settings import SettingsError, load_settings, unknown_variables

    for warning in unknown_variables(os.environ):
        typer.echo(f"warning: {warning}", err=True)
    try:
        return load_settings()
    except SettingsError as exc:
        fail(f"settings refused: {exc}")


def policy_or_exit(path: Path | None) -> Policy:
    try:
        return load_policy(path)
    except PolicyError as exc:
        console.print(f"[red]policy {path or '(default)'} refused:[/red] {exc}")
        raise typer.Exit(2) from exc


class HistoryFormat(StrEnum):
    """The history files replay reads (streams/sources.py)."""

    jsonl = "jsonl"
    csv = "csv"
    parquet = "parquet"


@app.command()
def replay(
    source: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, help="History: JSONL events, CSV or Parquet rows."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Output events (JSONL).")],
    snapshot: Annotated[Path, typer.Option("--snapshot", help="Final grade per customer.")],
    policy: PolicyOption = None,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Advance time to this RFC 3339 instant at the end."),
    ] = None,
    dead_letters: Annotated[
        Path | None,
        typer.Option("--dead-letters", help="Rejected lines; default: OUT with .dlq.jsonl."),
    ] = None,
    partitions: Annotated[
        int,
        typer.Option(
            min=1,
            help="Keep stream time per partition, as a worker on topics with this many "
            "does (default: the partitions a worker gives the topics it creates).",
        ),
    ] = DEFAULT_PARTITIONS,
    fmt: Annotated[
        HistoryFormat | None,
        typer.Option(
            "--format",
            help="jsonl, csv or parquet (default: from the name, else the first bytes); "
            "gzip is recognised by itself.",
        ),
    ] = None,
    mapping: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="CSV or Parquet: a TOML file naming each event field's column "
            "(docs/contracts.md, 'History files').",
        ),
    ] = None,
    jobs: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Processes grading partitions at once (default: one per CPU, at most one "
            "per partition). The files written do not depend on it.",
        ),
    ] = None,
) -> None:
    """Grade a file of events with no broker, writing output events and final grades."""
    from streams.replay_jobs import default_jobs, replay_parallel
    from streams.sources import Format, HistoryError, load_mapping

    end = rfc3339(as_of) if as_of is not None else None
    the_policy = policy_or_exit(policy)
    try:
        the_mapping = load_mapping(mapping) if mapping is not None else None
    except HistoryError as exc:
        console.print(f"[red]--mapping refused:[/red] {exc}")
        raise typer.Exit(2) from exc
    dlq = dead_letters or out.with_suffix(".dlq.jsonl")
    n_jobs = min(jobs, partitions) if jobs is not None else default_jobs(partitions)
    started = time.perf_counter()
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(f"replaying {source.name}", total=source.stat().st_size)
        try:
            stats = replay_parallel(
                source,
                the_policy,
                out,
                snapshot,
                dlq,
                as_of=end,
                partitions=partitions,
                jobs=n_jobs,
                progress=lambda done: bar.update(task, completed=done),
                fmt=Format(fmt.value) if fmt is not None else None,
                mapping=the_mapping,
            )
        except HistoryError as exc:
            console.print(f"[red]{source} cannot be replayed:[/red] {exc}")
            raise typer.Exit(2) from exc
    elapsed = time.perf_counter() - started

    table = Table(
        title=f"replay of {source} (policy {the_policy.policy_version}, "
        f"{partitions} partitions, {n_jobs} jobs)"
    )
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("lines read", f"{stats.lines:,}")
    table.add_row("events applied", f"{stats.applied:,}")
    table.add_row("duplicates (applied once)", f"{stats.duplicates:,}")
    for code, count in sorted(stats.dead_letters.items()):
        table.add_row(f"dead letters: {code}", f"{count:,}")
    for kind, count in sorted(stats.outputs.items()):
        table.add_row(f"outputs: {kind}", f"{count:,}")
    table.add_row("re-graded by time", f"{stats.regraded_by_time:,}")
    table.add_row("customers", f"{stats.customers:,}")
    table.add_row("seconds", f"{elapsed:.2f}")
    table.add_row("lines per second", f"{stats.lines / elapsed:,.0f}" if elapsed else "-")
    console.print(table)
    console.print(f"outputs: {out}  grades: {snapshot}  dead letters: {dlq}")


@app.command()
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
    import tempfile

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
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(f"grading {job.source.name}", total=job.source.stat().st_size)
        try:
            return job.grade(work, lambda read: bar.update(task, completed=read))
        except HistoryError as exc:
            refusal = f"{job.source} cannot be read: {exc}"
    fail(refusal)


@app.command()
def simulate(
    out: Annotated[
        Path | None, typer.Option("--out", help="File to write (one event per line).")
    ] = None,
    customers: Annotated[int, typer.Option(min=1, help="How many customers.")] = 1000,
    days: Annotated[int, typer.Option(min=1, help="How many days of history.")] = 365,
    seed: Annotated[int, typer.Option(help="The same seed gives the same file.")] = 1,
    start: Annotated[
        str | None, typer.Option(help="First day, RFC 3339 (default: a fixed date).")
    ] = None,
    kafka: Annotated[
        str | None,
        typer.Option(help="Bootstrap servers: produce to the input topics instead of --out."),
    ] = None,
) -> None:
    """Generate realistic synthetic events (seeded) for all three input topics (with --kafka,
    named and reached as the GRADESTREAM_* settings say, as for the worker)."""
    from datetime import UTC

    from streams.produce import produce
    from streams.simulate import SimConfig, generate, write_jsonl

    if (kafka is None) == (out is None):
        raise typer.BadParameter("give exactly one of --out FILE and --kafka BOOTSTRAP")
    first = datetime.fromtimestamp(rfc3339(start), UTC) if start is not None else None
    # A file has no record keys, so key faults (keyless, mismatched) are for Kafka only.
    config = SimConfig(keys=kafka is not None)
    records = generate(customers, days, seed, start=first, config=config)
    if kafka is not None:
        # The same settings as the worker's: topic names (GRADESTREAM_TOPIC_ORDERS...) and
        # Kafka security, so that what is simulated reaches the topics the worker reads.
        settings = settings_or_exit()
        counts = produce(
            records,
            kafka,
            rename=settings.input_topics(),
            producer_options=settings.kafka_client_options(),
        )
    else:
        assert out is not None
        counts = write_jsonl(records, out)
        console.print(f"{counts.pop('lines'):,} lines, {counts.pop('bytes'):,} bytes")
    table = Table(title=f"simulated to {kafka or out}")
    table.add_column("topic")
    table.add_column("records", justify="right")
    for topic, count in sorted(counts.items()):
        table.add_row(topic, f"{count:,}")
    console.print(table)


@app.command()
def worker(
    loglevel: Annotated[str, typer.Option(help="Log level: debug, info, warning.")] = "info",
) -> None:
    """Run the streaming worker; configured by GRADESTREAM_* environment variables."""
    # Everything that can be wrong with the configuration is found before the worker starts
    # and ends in one line naming the variable (exit 2), never in a traceback.
    settings = settings_or_exit()
    try:
        settings.datadir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        where = settings.datadir
        fail(f"settings refused: GRADESTREAM_DATADIR: cannot create {where}: {exc.strerror}")
    try:
        policy = load_policy(settings.policy)
    except PolicyError as exc:
        fail(f"settings refused: GRADESTREAM_POLICY: {exc}")
    shadow = None
    if settings.shadow_policy is not None:
        try:
            shadow = load_policy(settings.shadow_policy)
        except PolicyError as exc:
            fail(f"settings refused: GRADESTREAM_SHADOW_POLICY: {exc}")

    from streams.app.worker import run  # Faust and the rest: only once all of the above held

    run(settings, policy, loglevel, shadow)


@app.command()
def fit(
    out: Annotated[Path, typer.Option("--out", help="Where to write MODEL.json.")],
    history: Annotated[
        Path | None,
        typer.Argument(
            exists=True, dir_okay=False, help="Order history, one JSON per line (or --live)."
        ),
    ] = None,
    live: Annotated[
        bool,
        typer.Option(
            "--live",
            help="Fit on what the running system holds: the customers table's changelog "
            "topic, reached as the GRADESTREAM_* settings say.",
        ),
    ] = False,
    policy: PolicyOption = None,
    calibration_end: Annotated[
        str | None,
        typer.Option(
            help="Fit on orders before this RFC 3339 instant; default: all of them (with "
            "--live: up to the latest state's time)."
        ),
    ] = None,
    tolerance: Annotated[
        float,
        typer.Option(
            min=0,
            max=1,
            help="Keep the model already at --out when no customer's churn signal moves by "
            "this much (a new model re-grades every customer); 0: always write.",
        ),
    ] = 0.02,
    min_customers: Annotated[int, typer.Option(min=10, help="Fewer: too little data.")] = 100,
    min_repeat_customers: Annotated[
        int, typer.Option(min=10, help="Fewer repeat customers with spend: too little data.")
    ] = 20,
    clv_horizon_days: Annotated[float, typer.Option(min=1, max=3660)] = 365.0,
    monthly_discount: Annotated[float, typer.Option(min=0, max=0.99)] = 0.01,
    allow_unconverged: Annotated[
        bool, typer.Option(help="Write the model even if a fit did not converge.")
    ] = False,
) -> None:
    """Fit the BG/NBD (churn) and Gamma-Gamma (value) model on an order history, or on the
    live state (--live). With too little data it says so and writes a MODEL.json without
    parameters, and policies that name it use the model-free churn score."""
    from streams.models.fitting import fit_command, history_summary
    from streams.models.history import FitError

    if (history is None) == (not live):
        fail("fit: give either a HISTORY file or --live")
    the_policy = policy_or_exit(policy)
    cut = rfc3339(calibration_end) if calibration_end is not None else None
    try:
        if history is not None:
            summary = history_summary(
                history,
                cut,
                rates=the_policy.currency.rates,
                base_currency=the_policy.currency.base,
            )
            source = history.name
        else:
            summary, source = _live_summary(cut)
        fit_command(
            summary,
            out,
            source=source,
            currency=the_policy.currency.base,
            clv_horizon_days=clv_horizon_days,
            monthly_discount=monthly_discount,
            tolerance=tolerance,
            min_customers=min_customers,
            min_repeat=min_repeat_customers,
            allow_unconverged=allow_unconverged,
            console=console,
        )
    except FitError as exc:
        console.print(f"[red]fit failed:[/red] {exc}")
        raise typer.Exit(1) from exc


def _live_summary(cut: int | None) -> tuple[Summary, str]:
    """The fit's summary from the customers table's changelog (streams.models.live)."""
    import asyncio

    from streams.models.live import read_changelog, summarize_states
    from streams.topics import changelog_topic

    settings = settings_or_exit()
    topic = changelog_topic(settings)
    try:
        states, counts = asyncio.run(
            read_changelog(settings.kafka_bootstrap_servers, topic, settings.kafka_client_options())
        )
    except (ValueError, TimeoutError, OSError) as exc:
        fail(f"fit --live: cannot read {topic} at {settings.kafka_bootstrap_servers}: {exc}")
    console.print(
        f"read {topic}: {len(states)} customer states "
        f"({', '.join(f'{k} {v}' for k, v in counts.items())})"
    )
    return summarize_states(states, cut, counts), topic


@policy_app.command("check")
def policy_check(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Policy file.")],
) -> None:
    """Validate a policy file; exit 2 naming the bad key if it is refused."""
    try:
        loaded = load_policy(file)
    except PolicyError as exc:
        fail(f"policy refused: {exc}")
    console.print(f"[green]ok[/green]: {file} is a valid policy, version {loaded.policy_version}")
    if loaded.unfitted is not None:
        console.print(
            f"[yellow]note[/yellow]: churn.model names a model fitted on too little data "
            f"({loaded.unfitted}): the churn score is the model-free one until a fit succeeds"
        )


policy_app.command("diff")(policy_diff)

topics_app = typer.Typer(help="Kafka topics: create them all, or compare the cluster with them.")
app.add_typer(topics_app, name="topics")

ReplicationOption = Annotated[
    int | None,
    typer.Option(
        "--replication-factor",
        min=1,
        envvar="GRADESTREAM_TOPICS_REPLICATION_FACTOR",
        help="Replicas per partition; default: 3, or the number of brokers if fewer.",
    ),
]


@topics_app.command("create")
def topics_create(replication_factor: ReplicationOption = None) -> None:
    """Create every topic gradestream uses (names, partitions from GRADESTREAM_* settings);
    existing topics are reported and left as they are. Exit 1 if a creation failed."""
    from streams.topics import create_command

    settings = settings_or_exit()
    if not create_command(settings, replication_factor, Console()):
        raise typer.Exit(1)


@topics_app.command("describe")
def topics_describe() -> None:
    """Compare the cluster's topics with what the settings expect; exit 1 on a mismatch
    (a missing topic, another partition count or cleanup policy)."""
    from streams.topics import describe_command

    settings = settings_or_exit()
    if not describe_command(settings, Console()):
        console.print("[red]the cluster does not match the settings[/red]")
        raise typer.Exit(1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
