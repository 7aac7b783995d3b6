"""`gradestream fit`: the churn and value models, from a history file or the live state
(streams/models)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from streams.cli_support import (
    PolicyOption,
    console,
    fail,
    policy_or_exit,
    rfc3339,
    settings_or_exit,
)

if TYPE_CHECKING:
    from streams.models.history import Summary


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
