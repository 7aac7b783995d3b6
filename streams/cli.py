"""The `gradestream` command. Typer parses and checks arguments (a bad one prints what is
wrong and exits 2); rich draws the progress bar and the summary tables."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from streams.cli_bootstrap import bootstrap
from streams.cli_fit import fit
from streams.cli_support import (
    DEFAULT_PARTITIONS,
    HistoryFormat,
    PolicyOption,
    console,
    fail,
    file_progress,
    policy_or_exit,
    rfc3339,
    settings_or_exit,
)
from streams.core.errors import PolicyError
from streams.core.policy import load_policy
from streams.policy_diff import diff as policy_diff

app = typer.Typer(
    help="gradestream: a streaming customer grader (RFM, tiers, lifecycle, churn risk).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
policy_app = typer.Typer(help="Policy files: every threshold, bin, ladder and weight.")
app.add_typer(policy_app, name="policy")


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
    with file_progress() as bar:
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


app.command()(bootstrap)


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


app.command()(fit)


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
