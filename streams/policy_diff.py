"""`gradestream policy diff OLD NEW HISTORY`: what a policy change would move, before it
goes live.

The history is replayed under each policy in turn, each on every CPU
(`streams.replay_jobs.replay_parallel`, any format `streams.sources` reads), and the two
results are compared:

- moves: for each of tier, segment, lifecycle stage and value class, a from/to matrix
  counting customers by their final grade under OLD (rows) and under NEW (columns); the
  diagonal holds those that stay put;
- churn alerts per day: the `churn_risk_changed` events with alert `raised`, by UTC day
  of `occurred_at`, under each policy;
- the customers whose final grades differ in a category (`categories`: RFM code,
  segment, tier, lifecycle, intent grade, value class, churn band; not the continuous
  figures, such as the churn score or what the next tier needs, which move with nearly
  any threshold), one JSON line each with both grades (`{"customer_id", "old", "new"}`),
  by customer_id.

Final grades are replay's: each customer's snapshot at its own as_of, or with `as_of`
every grade at that instant. The report is drawn as rich tables and written as JSON
(`report.json` next to `customers.jsonl` in the output folder; `--json` prints it too).
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Annotated, Any, Final

import orjson
import typer
from rich.console import Console
from rich.table import Table

from streams.core.compiled import LIFECYCLE_STAGES
from streams.core.errors import PolicyError
from streams.core.policy import Policy, load_policy
from streams.core.timefmt import parse_rfc3339
from streams.settings import Settings
from streams.sources import Format, Mapping

# The grades whose moves are counted, as the snapshot names them.
GRADES: Final = ("tier", "segment", "lifecycle", "value_class")
# A customer graded under one policy only (all its events refused under the other).
ABSENT: Final = "(none)"
# Days of differing alert counts drawn in the table (report.json has every day).
SHOWN_DAYS: Final = 31


@dataclass
class Side:
    """One policy's replay: its version and counts."""

    version: str
    outputs: Counter[str] = field(default_factory=Counter)
    alerts: Counter[str] = field(default_factory=Counter)  # raised alerts by UTC day


@dataclass
class Diff:
    """The comparison of two replays of one history (see the module)."""

    old: Side
    new: Side
    labels: dict[str, list[str]]  # per grade, the matrix's labels in reading order
    moves: dict[str, Counter[tuple[str, str]]] = field(default_factory=dict)
    customers: int = 0
    differ: int = 0

    def matrix(self, grade: str) -> dict[str, dict[str, int]]:
        """The from/to matrix of `grade`: rows (OLD) and columns (NEW) with any count."""
        counts = self.moves[grade]
        rows = [r for r in self.labels[grade] if any(f == r for f, _ in counts)]
        cols = [c for c in self.labels[grade] if any(t == c for _, t in counts)]
        return {r: {c: counts[(r, c)] for c in cols} for r in rows}

    def alerts_per_day(self) -> list[dict[str, Any]]:
        days = sorted(set(self.old.alerts) | set(self.new.alerts))
        return [{"day": d, "old": self.old.alerts[d], "new": self.new.alerts[d]} for d in days]

    def report(self, customers_file: Path | None = None) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {
            "old": {"policy_version": self.old.version, "outputs": dict(self.old.outputs)},
            "new": {"policy_version": self.new.version, "outputs": dict(self.new.outputs)},
            "customers": self.customers,
            "differ": self.differ,
            "moves": {grade: self.matrix(grade) for grade in GRADES},
            "alerts_per_day": self.alerts_per_day(),
            "alerts": {"old": self.old.alerts.total(), "new": self.new.alerts.total()},
            "customers_file": None if customers_file is None else str(customers_file),
        }


def labels(old: Policy, new: Policy) -> dict[str, list[str]]:
    """Each grade's values in reading order: ladders and segment rules as the policies
    list them (OLD's first), stages as the lifecycle goes, value classes A to C."""

    def union(*names: list[str]) -> list[str]:
        return [*dict.fromkeys(n for group in names for n in group), ABSENT]

    return {
        "tier": union([r.name for r in old.tiers.ladder], [r.name for r in new.tiers.ladder]),
        "segment": union([r.name for r in old.segments], [r.name for r in new.segments]),
        "lifecycle": union(list(LIFECYCLE_STAGES)),
        "value_class": union(["A", "B", "C"]),
    }


def _grades(path: Path) -> Iterator[dict[str, Any]]:
    with path.open("rb") as f:
        for line in f:
            yield orjson.loads(line)


def categories(grade: dict[str, Any]) -> tuple[str, ...]:
    """What a grade says of a customer, as categories (the due times' "categories the
    snapshot shows", docs/grading.md)."""
    return (
        grade["rfm"]["code"],
        grade["segment"],
        grade["tier"],
        grade["lifecycle"],
        grade["intent_grade"],
        grade["value_class"],
        grade["churn"]["band"],
    )


def compare(diff: Diff, old: Path, new: Path, differ: IO[bytes]) -> None:
    """Count the moves between two final-grade files (replay writes them by customer_id)
    and write the customers whose grades differ to `differ`."""
    olds, news = _grades(old), _grades(new)
    a, b = next(olds, None), next(news, None)
    dumps = orjson.dumps
    for grade in GRADES:
        diff.moves[grade] = Counter()
    while a is not None or b is not None:
        # The lower customer_id first; a customer in both files, from both at once.
        ka = None if a is None else a["customer_id"]
        kb = None if b is None else b["customer_id"]
        before = a if kb is None or (ka is not None and ka <= kb) else None
        after = b if ka is None or (kb is not None and kb <= ka) else None
        if before is not None:
            a = next(olds, None)
        if after is not None:
            b = next(news, None)
        diff.customers += 1
        for grade in GRADES:
            was = ABSENT if before is None else before[grade]
            diff.moves[grade][(was, ABSENT if after is None else after[grade])] += 1
        if before is None or after is None or categories(before) != categories(after):
            diff.differ += 1
            known = before if before is not None else after
            assert known is not None
            line = {"customer_id": known["customer_id"], "old": before, "new": after}
            differ.write(dumps(line, option=orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE))


def count_outputs(side: Side, outputs: Path) -> None:
    """Output events by type, and raised churn alerts by UTC day, from a replay's file."""
    with outputs.open("rb") as f:
        for line in f:
            event = orjson.loads(line)
            side.outputs[event["type"]] += 1
            if event["type"] == "churn_risk_changed" and event["alert"] == "raised":
                side.alerts[event["occurred_at"][:10]] += 1


def run_diff(
    old: Policy,
    new: Policy,
    history: Path,
    out_dir: Path,
    as_of: int | None = None,
    partitions: int = 1,
    jobs: int = 1,
    fmt: Format | None = None,
    mapping: Mapping | None = None,
    progress: Any = None,
) -> Diff:
    """Replay `history` under each policy and compare (`customers.jsonl` in `out_dir`).
    `progress(side, bytes_read)`, if given, is told how far each replay has read."""
    from streams.replay_jobs import replay_parallel

    out_dir.mkdir(parents=True, exist_ok=True)
    diff = Diff(Side(old.version), Side(new.version), labels(old, new))
    with tempfile.TemporaryDirectory(prefix=".policy-diff-", dir=out_dir) as tmp:
        work = Path(tmp)
        for name, policy, side in (("old", old, diff.old), ("new", new, diff.new)):

            def told(done: int, name: str = name) -> None:
                if progress is not None:
                    progress(name, done)

            replay_parallel(
                history,
                policy,
                work / f"{name}.out.jsonl",
                work / f"{name}.grades.jsonl",
                work / f"{name}.dlq.jsonl",
                as_of=as_of,
                progress=told,
                partitions=partitions,
                jobs=jobs,
                fmt=fmt,
                mapping=mapping,
            )
            count_outputs(side, work / f"{name}.out.jsonl")
        with (out_dir / "customers.jsonl").open("wb") as differ:
            compare(diff, work / "old.grades.jsonl", work / "new.grades.jsonl", differ)
    return diff


def render(diff: Diff, console: Console) -> None:
    """The report as rich tables: a matrix per grade, the alert days, the totals."""
    for grade in GRADES:
        matrix = diff.matrix(grade)
        cols = list(next(iter(matrix.values()), {}))
        title = f"{grade}: customers by {diff.old.version} (rows), {diff.new.version} (columns)"
        table = Table(title=title)
        table.add_column("from \\ to")
        for col in cols:
            table.add_column(col, justify="right")
        for row, counts in matrix.items():
            table.add_row(row, *(_cell(counts[col], col == row) for col in cols))
        console.print(table)
    days = [d for d in diff.alerts_per_day() if d["old"] != d["new"]]
    table = Table(title=f"churn alerts raised per day where they differ ({len(days)} days)")
    for column in ("day", diff.old.version, diff.new.version):
        table.add_column(column, justify="right")
    for day in days[:SHOWN_DAYS]:
        table.add_row(day["day"], f"{day['old']:,}", f"{day['new']:,}")
    if len(days) > SHOWN_DAYS:
        table.add_row("...", f"{len(days) - SHOWN_DAYS} more days in report.json", "")
    table.add_row("all days", f"{diff.old.alerts.total():,}", f"{diff.new.alerts.total():,}")
    console.print(table)
    table = Table(title="output events")
    for column in ("type", diff.old.version, diff.new.version):
        table.add_column(column, justify="right")
    for kind in sorted(set(diff.old.outputs) | set(diff.new.outputs)):
        table.add_row(kind, f"{diff.old.outputs[kind]:,}", f"{diff.new.outputs[kind]:,}")
    console.print(table)
    console.print(f"{diff.differ:,} of {diff.customers:,} customers' grades differ")


def _cell(count: int, stays: bool) -> str:
    """Who stays dim, who moves bold, nobody blank."""
    if not count:
        return ""
    return f"[dim]{count:,}[/]" if stays else f"[bold]{count:,}[/]"


def _policy(path: Path) -> Policy:
    try:
        return load_policy(path)
    except PolicyError as exc:
        raise typer.BadParameter(str(exc)) from None


def _instant(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_rfc3339(value)
    except ValueError as exc:
        raise typer.BadParameter(f"--as-of: {value!r} is not an RFC 3339 instant: {exc}") from None


def diff(
    old: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Policy now live.")],
    new: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Policy to try.")],
    history: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="Events: JSONL, CSV, Parquet.")
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Folder for report.json and customers.jsonl.")
    ] = Path("policy-diff"),
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Grade everyone at this RFC 3339 instant.")
    ] = None,
    partitions: Annotated[
        int, typer.Option(min=1, help="Stream time per partition, as replay keeps it.")
    ] = Settings.model_fields["partitions"].default,
    jobs: Annotated[int | None, typer.Option(min=1, help="Processes (default: CPUs).")] = None,
    fmt: Annotated[Format | None, typer.Option("--format", help="Default: guessed.")] = None,
    mapping: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="CSV or Parquet: the column mapping."),
    ] = None,
    print_json: Annotated[bool, typer.Option("--json", help="Print report.json.")] = False,
) -> None:
    """Replay HISTORY under OLD and NEW policies and report what would move: tier,
    segment, lifecycle and value-class moves, churn alerts per day, and the customers
    whose grades differ (OUT/customers.jsonl, with both grades)."""
    from rich.progress import BarColumn, DownloadColumn, Progress

    from streams.replay_jobs import default_jobs
    from streams.sources import HistoryError, load_mapping

    console = Console(stderr=True)
    old_policy, new_policy, end = _policy(old), _policy(new), _instant(as_of)
    try:
        columns = None if mapping is None else load_mapping(mapping)
    except HistoryError as exc:
        raise typer.BadParameter(f"--mapping: {exc}") from None
    n_jobs = min(jobs, partitions) if jobs is not None else default_jobs(partitions)
    size = history.stat().st_size
    with Progress(
        "{task.description}", BarColumn(), DownloadColumn(), console=console, transient=True
    ) as bar:
        tasks = {
            name: bar.add_task(f"replaying under {policy.version}", total=size)
            for name, policy in (("old", old_policy), ("new", new_policy))
        }
        try:
            result = run_diff(
                old_policy,
                new_policy,
                history,
                out,
                end,
                partitions,
                n_jobs,
                fmt,
                columns,
                lambda name, done: bar.update(tasks[name], completed=done),
            )
        except HistoryError as exc:
            console.print(f"[red]{history} cannot be replayed:[/red] {exc}")
            raise typer.Exit(2) from exc
    report = result.report(out / "customers.jsonl")
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    render(result, console)
    console.print(f"report: {out / 'report.json'}  customers: {out / 'customers.jsonl'}")
    if print_json:
        typer.echo(json.dumps(report, indent=2))
