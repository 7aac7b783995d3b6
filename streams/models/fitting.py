"""`gradestream fit`: fit the churn and value models on per-customer summaries (from a
history file, `history`, or from the live table's changelog, `live`), print a report, and
decide what to write to MODEL.json:

* a new model, when there is none yet or its churn signal moved;
* nothing, when a model is there already and the new fit's churn signal differs from it
  by less than `tolerance` for every customer: a new file would carry a new
  `model_version`, which re-grades every customer (docs/models.md), for nothing;
* an `Unfitted` file, when there is too little data: a policy that names it grades with
  the model-free score until a later fit succeeds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final, Literal

from rich.console import Console, Group
from rich.table import Table

from streams.models.bgnbd import p_alive, p_no_purchase
from streams.models.history import (
    MIN_CUSTOMERS,
    MIN_REPEAT_CUSTOMERS,
    FitError,
    Summary,
    TooLittleData,
    fit_summary,
    read_history,
    rfc3339,
    summarize,
    to_epoch,
)
from streams.models.model import Model, ModelError
from streams.models.unfitted import Unfitted, load_model_file

__all__ = ["TOLERANCE", "FitOutcome", "fit_command", "history_summary", "signal_change"]

# The largest change of a customer's churn signal (P(no order in 90 days), P(alive)) for
# which a re-fit keeps the model in place: with the example policy's weight 0.3, a score
# moves by at most 0.006, not worth a re-grade of every customer. (Refits a few days
# apart on 1,500 simulated customers move the signals by 0.008-0.016: the drop-out
# parameters a, b are loosely identified, within their standard errors.)
TOLERANCE: Final = 0.02


@dataclass(frozen=True, slots=True)
class FitOutcome:
    """What `fit_command` did: wrote `model`, kept the model already there, or wrote an
    unfitted file. `change`: the largest signal change against the model that was there."""

    action: Literal["written", "kept", "unfitted"]
    model: Model | Unfitted
    change: float | None = None


def history_summary(
    path: Path,
    calibration_end: datetime | str | float | None = None,
    *,
    rates: Mapping[str, float] | None = None,
    base_currency: str = "USD",
) -> Summary:
    """The per-customer summary of a history file at `calibration_end` (default: just after
    its last event, so the whole file)."""
    cut = None if calibration_end is None else to_epoch(calibration_end)
    history = read_history(path, rates, base_currency)
    if cut is None:
        if not math.isfinite(history.last_event):
            raise FitError(f"{path}: no event with a valid occurred_at")
        cut = math.floor(history.last_event) + 1.0
    return summarize(history, cut)


def signal_change(old: Model, new: Model, summary: Summary) -> float:
    """The largest change, over the summary's customers, of P(no order in the next 90 days)
    and of P(alive) from `old` to `new` (the churn signals a policy may use)."""
    worst = 0.0
    for x, t_x, age in zip(
        summary.x.tolist(), summary.t_x.tolist(), summary.T.tolist(), strict=True
    ):
        n = int(x)
        for fn in (p_no_purchase, None):
            if fn is None:
                a, b = p_alive(old.bgnbd, n, t_x, age), p_alive(new.bgnbd, n, t_x, age)
            else:
                a, b = fn(old.bgnbd, 90.0, n, t_x, age), fn(new.bgnbd, 90.0, n, t_x, age)
            worst = max(worst, abs(a - b))
    return worst


def fit_command(
    summary: Summary,
    out: Path,
    *,
    source: str,
    currency: str = "USD",
    clv_horizon_days: float = 365.0,
    monthly_discount: float = 0.01,
    tolerance: float = TOLERANCE,
    min_customers: int = MIN_CUSTOMERS,
    min_repeat: int = MIN_REPEAT_CUSTOMERS,
    allow_unconverged: bool = False,
    console: Console | None = None,
) -> FitOutcome:
    """Fit on `summary`, print a report, and write `out` as the module docstring says.

    A fit that did not converge is not written unless `allow_unconverged`: a model
    deployed into the stream should be one we trust. Raises FitError (with the report
    already printed) or ValueError for a bad argument.
    """
    con = console or Console(stderr=True)
    if not (math.isfinite(clv_horizon_days) and 0 < clv_horizon_days <= 3660):
        raise ValueError("clv.horizon_days: must be a number in (0, 3660]")
    if not (math.isfinite(monthly_discount) and 0 <= monthly_discount < 1):
        raise ValueError("clv.monthly_discount: must be a number in [0, 1)")
    try:
        model = fit_summary(
            summary,
            currency=currency,
            source=source,
            clv_horizon_days=clv_horizon_days,
            monthly_discount=monthly_discount,
            min_customers=min_customers,
            min_repeat=min_repeat,
        )
    except TooLittleData as exc:
        unfitted = Unfitted(str(exc), rfc3339(summary.calibration_end), source, summary.counts)
        out.write_text(unfitted.to_json(), encoding="utf-8")
        con.print(
            f"[yellow]too little data[/yellow]: {exc}. Wrote {out} without parameters: a "
            "policy that names it grades with the model-free churn score until a fit succeeds."
        )
        return FitOutcome("unfitted", unfitted)
    con.print(report_table(model))
    assert model.fit is not None  # fit_summary always records how it fitted
    failed = [
        name
        for name, rep in (("BG/NBD", model.fit.bgnbd), ("Gamma-Gamma", model.fit.gamma_gamma))
        if not rep.converged
    ]
    if failed and not allow_unconverged:
        raise FitError(f"{' and '.join(failed)} did not converge; {out} not written")
    previous = _previous(out)
    change = None
    if previous is not None and previous.currency == model.currency:
        change = signal_change(previous, model, summary)
        if change < tolerance:
            con.print(
                f"kept {out} (model_version {previous.model_version}): no customer's churn "
                f"signal moves by {tolerance} or more (at most {change:.4f}), so nothing is "
                "re-graded"
            )
            return FitOutcome("kept", previous, change)
    out.write_text(model.to_json(), encoding="utf-8")
    moved = "" if change is None else f"; churn signals moved by up to {change:.4f}"
    con.print(f"wrote {out} (model_version {model.model_version}{moved})")
    return FitOutcome("written", model, change)


def _previous(out: Path) -> Model | None:
    """The fitted model already at `out`, if any (an unreadable or unfitted file is
    replaced, not compared with)."""
    if not out.exists():
        return None
    try:
        loaded = load_model_file(out)
    except ModelError:
        return None
    return loaded if isinstance(loaded, Model) else None


def report_table(model: Model) -> Group:
    """Rich tables: the parameters with standard errors, how each fit went, the counts."""
    fit = model.fit
    params = Table(title=f"model {model.model_version}: parameters")
    for name in ("model", "parameter", "estimate", "std. error"):
        params.add_column(name, justify="left" if name in ("model", "parameter") else "right")
    bg_se = fit.bgnbd.se if fit else {}
    gg_se = fit.gamma_gamma.se if fit else {}
    for name, value in zip(("r", "alpha", "a", "b"), model.bgnbd.as_tuple(), strict=True):
        unit = " (days)" if name == "alpha" else ""
        params.add_row("BG/NBD", name + unit, f"{value:.4g}", _se(bg_se.get(name)))
    for name, value in zip(("p", "q", "v"), model.gamma_gamma.as_tuple(), strict=True):
        unit = f" ({model.currency})" if name == "v" else ""
        params.add_row("Gamma-Gamma", name + unit, f"{value:.4g}", _se(gg_se.get(name)))
    if fit is None:
        return Group(params)
    fits = Table(title=f"fit (orders before {fit.calibration_end})")
    for name in ("model", "log-likelihood", "customers", "converged", "iterations"):
        fits.add_column(name, justify="left" if name == "model" else "right")
    for label, rep in (("BG/NBD", fit.bgnbd), ("Gamma-Gamma", fit.gamma_gamma)):
        state = "yes" if rep.converged else "[red]NO[/red]"
        if rep.at_bound:
            state += f" (at bound: {', '.join(rep.at_bound)})"
        fits.add_row(
            label, f"{rep.log_likelihood:.2f}", str(rep.n_customers), state, str(rep.iterations)
        )
    counts = Table(title=f"history {fit.source}")
    counts.add_column("count")
    counts.add_column("value", justify="right")
    for key in sorted(fit.counts):
        counts.add_row(key, str(fit.counts[key]))
    return Group(params, fits, counts)


def _se(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.3g}"
