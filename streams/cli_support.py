"""What the `gradestream` commands share: the console, argument types and parsers, and
the one-line refusals (streams/cli.py and its cli_*.py commands)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Final, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

from streams.core.errors import PolicyError
from streams.core.policy import Policy, load_policy
from streams.settings import Settings

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


def file_progress() -> Progress:
    """The progress bar of a command that reads a file: bytes read and time left, gone
    when the command prints its summary."""
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
