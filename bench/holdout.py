"""Holdout check of the BG/NBD + Gamma-Gamma model against a recency-only baseline.

Simulates an event history with the project's simulator (not a BG/NBD world: customers
lapse on a clock, some join late, a few are big spenders), fits the model on the first
`--calibration-days` and scores every customer at the cut; then compares with what they
did in the rest of the period:

* churn: AUC of a churn score for "no order in the holdout" (1 - P(alive); also the model's
  expected holdout purchases, negated; the baseline: days since the last order);
* purchases: per-customer MAE and the aggregate ratio (predicted / actual) of holdout
  orders; the baseline predicts the calibration repeat rate x / T times the holdout length.

    .venv/bin/python bench/holdout.py                 # print the tables
    .venv/bin/python bench/holdout.py --write-docs    # and update docs/models.md
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
from rich.console import Console
from rich.table import Table

REPO: Final = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere, without installing

from streams.core.policy import default_policy  # noqa: E402
from streams.models.bgnbd import expected_purchases, p_no_purchase  # noqa: E402
from streams.models.history import fit_summary, read_history, summarize  # noqa: E402
from streams.models.model import Model, score  # noqa: E402
from streams.simulate import DEFAULT_START, SimConfig, generate, write_jsonl  # noqa: E402

DOCS: Final = REPO / "docs" / "models.md"
BEGIN: Final = "<!-- holdout:begin (written by bench/holdout.py --write-docs) -->"
END: Final = "<!-- holdout:end -->"
DAY: Final = 86_400

FloatArray = npt.NDArray[np.float64]


def auc(score_: FloatArray, positive: npt.NDArray[np.bool_]) -> float:
    """Area under the ROC curve: P(score of a random positive > a random negative), ties 1/2.

    Mann-Whitney U from average ranks (ties share their mean rank), in numpy.
    """
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(score_, kind="mergesort")
    sorted_scores = score_[order]
    # Average rank of each run of equal scores (ranks are 1-based).
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    run_rank = first + (counts + 1) / 2.0
    ranks = np.empty(score_.size)
    ranks[order] = np.repeat(run_rank, counts)
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--customers", type=int, default=5000)
    ap.add_argument("--days", type=int, default=730)
    ap.add_argument("--calibration-days", type=int, default=365)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--write-docs", action="store_true", help=f"update {DOCS.relative_to(REPO)}")
    args = ap.parse_args(argv)
    con = Console()

    policy = default_policy()  # its currency rates: the same conversion as the stream's
    start = DEFAULT_START
    cut = (start + timedelta(days=args.calibration_days)).timestamp()
    end = (start + timedelta(days=args.days)).timestamp()
    holdout_days = args.days - args.calibration_days

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "history.jsonl"
        t0 = time.perf_counter()
        write_jsonl(
            generate(args.customers, args.days, args.seed, config=SimConfig(keys=False)), path
        )
        t_sim = time.perf_counter() - t0
        t0 = time.perf_counter()
        history = read_history(path, policy.currency.rates, policy.currency.base)
        summary = summarize(history, cut, end)
        t_read = time.perf_counter() - t0
    t0 = time.perf_counter()
    model = fit_summary(summary, currency=policy.currency.base, source="simulated")
    t_fit = time.perf_counter() - t0

    x, t_x, T, mean = summary.x, summary.t_x, summary.T, summary.mean_value
    rows = list(zip(x.astype(int).tolist(), t_x.tolist(), T.tolist(), mean.tolist(), strict=True))
    scores = [score(model, xi, txi, Ti, mi) for xi, txi, Ti, mi in rows]
    p_alive = np.array([s.p_alive for s in scores])
    # Over the holdout's own length (Scores has 90 and 365 days; this asks for any length).
    expected = np.array([expected_purchases(model.bgnbd, holdout_days, *r[:3]) for r in rows])
    quiet = np.array([p_no_purchase(model.bgnbd, holdout_days, *r[:3]) for r in rows])
    us_per_call = _time_score(model, rows)

    actual = summary.holdout
    churned = actual == 0
    recency = (T - t_x) / max(1.0, float((T - t_x).max()))  # normalised days since last order
    base_pred = np.where(T > 0, x / np.maximum(T, 1e-9), 0.0) * holdout_days
    repeat = x > 0

    results = {
        "customers": int(x.size),
        "churned": int(churned.sum()),
        "auc_model": auc(1.0 - p_alive, churned),
        "auc_model_expected": auc(-expected, churned),
        "auc_model_quiet": auc(quiet, churned),
        "auc_model_quiet_repeat": auc(quiet[repeat], churned[repeat]),
        "auc_model_quiet_single": auc(quiet[~repeat], churned[~repeat]),
        "auc_baseline_single": auc(recency[~repeat], churned[~repeat]),
        "mean_quiet": float(quiet.mean()),
        "auc_baseline": auc(recency, churned),
        "auc_model_repeat": auc(1.0 - p_alive[repeat], churned[repeat]),
        "auc_baseline_repeat": auc(recency[repeat], churned[repeat]),
        "repeat_customers": int(repeat.sum()),
        "mae_model": float(np.abs(expected - actual).mean()),
        "mae_baseline": float(np.abs(base_pred - actual).mean()),
        "ratio_model": float(expected.sum() / actual.sum()),
        "ratio_baseline": float(base_pred.sum() / actual.sum()),
        "actual_total": float(actual.sum()),
        "us_per_call": us_per_call,
    }
    con.print(_params_table(model))
    con.print(_results_table(results, holdout_days))
    con.print(
        f"simulate {t_sim:.1f} s, read {t_read:.1f} s, fit {t_fit:.2f} s; "
        f"score {us_per_call:.1f} us/call ({platform.python_implementation()} "
        f"{platform.python_version()}, {platform.machine()})"
    )
    if args.write_docs:
        cmd = "python bench/holdout.py" + "".join(
            f" --{k.replace('_', '-')} {v}"
            for k, v in vars(args).items()
            if k != "write_docs" and v != ap.get_default(k)
        )
        _write_docs(_markdown(model, results, args, holdout_days, cmd))
        con.print(f"updated {DOCS.relative_to(REPO)}")
    return 0


def _time_score(model: Model, rows: list[tuple[int, float, float, float]]) -> float:
    """Mean microseconds per `score` call over the real customers, best of 5 passes."""
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for xi, txi, Ti, mi in rows:
            score(model, xi, txi, Ti, mi)
        best = min(best, (time.perf_counter() - t0) / len(rows))
    return best * 1e6


def _params_table(model: Model) -> Table:
    fit = model.fit
    table = Table(title="fitted on the calibration period")
    table.add_column("parameter")
    table.add_column("estimate", justify="right")
    table.add_column("std. error", justify="right")
    for label, params, se in (
        ("BG/NBD", model.bgnbd.as_tuple(), fit.bgnbd.se if fit else {}),
        ("Gamma-Gamma", model.gamma_gamma.as_tuple(), fit.gamma_gamma.se if fit else {}),
    ):
        names = ("r", "alpha", "a", "b") if label == "BG/NBD" else ("p", "q", "v")
        for name, value in zip(names, params, strict=True):
            table.add_row(f"{label} {name}", f"{value:.4g}", f"{se.get(name, float('nan')):.3g}")
    return table


def _results_table(res: dict[str, float], holdout_days: int) -> Table:
    table = Table(title=f"holdout ({holdout_days} days)")
    table.add_column("measure")
    table.add_column("model", justify="right")
    table.add_column("recency baseline", justify="right")
    for label, m, b in _result_rows(res):
        table.add_row(label, m, b)
    return table


def _result_rows(res: dict[str, float]) -> list[tuple[str, str, str]]:
    single = res["customers"] - res["repeat_customers"]
    return [
        (
            f"churn AUC, score 1 - P(alive), all {res['customers']} customers",
            f"{res['auc_model']:.3f}",
            f"{res['auc_baseline']:.3f}",
        ),
        (
            "churn AUC, score P(no order in the holdout), all customers",
            f"{res['auc_model_quiet']:.3f}",
            f"{res['auc_baseline']:.3f}",
        ),
        (
            "churn AUC, score minus expected holdout orders, all customers",
            f"{res['auc_model_expected']:.3f}",
            f"{res['auc_baseline']:.3f}",
        ),
        (
            f"churn AUC, 1 - P(alive), {res['repeat_customers']} repeat customers (x >= 1)",
            f"{res['auc_model_repeat']:.3f}",
            f"{res['auc_baseline_repeat']:.3f}",
        ),
        (
            "churn AUC, P(no order), repeat customers (x >= 1)",
            f"{res['auc_model_quiet_repeat']:.3f}",
            f"{res['auc_baseline_repeat']:.3f}",
        ),
        (
            f"churn AUC, P(no order), {single} one-order customers (x = 0)",
            f"{res['auc_model_quiet_single']:.3f}",
            f"{res['auc_baseline_single']:.3f}",
        ),
        (
            f"share with no holdout order: predicted (mean P) vs actual {res['churned']}",
            f"{res['mean_quiet']:.3f}",
            f"{res['churned'] / res['customers']:.3f} actual",
        ),
        (
            "holdout orders, MAE per customer",
            f"{res['mae_model']:.3f}",
            f"{res['mae_baseline']:.3f}",
        ),
        (
            f"holdout orders, predicted / actual ({res['actual_total']:.0f})",
            f"{res['ratio_model']:.3f}",
            f"{res['ratio_baseline']:.3f}",
        ),
    ]


def _markdown(
    model: Model, res: dict[str, float], args: argparse.Namespace, holdout_days: int, cmd: str
) -> str:
    fit = model.fit
    assert fit is not None
    lines = [
        BEGIN,
        "",
        f"`{cmd}`: {args.customers} simulated customers over {args.days} days (seed "
        f"{args.seed}), calibration = the first {args.calibration_days} days, holdout = the "
        f"next {holdout_days}.",
        "",
        "| parameter | estimate | std. error |",
        "|---|---:|---:|",
    ]
    for label, names, params, se in (
        ("BG/NBD", ("r", "alpha", "a", "b"), model.bgnbd.as_tuple(), fit.bgnbd.se),
        ("Gamma-Gamma", ("p", "q", "v"), model.gamma_gamma.as_tuple(), fit.gamma_gamma.se),
    ):
        for name, value in zip(names, params, strict=True):
            unit = " (days)" if name == "alpha" else " (USD)" if name == "v" else ""
            lines.append(f"| {label} {name}{unit} | {value:.4g} | {se[name]:.3g} |")
    lines += [
        "",
        "| measure | model | recency baseline |",
        "|---|---:|---:|",
    ]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in _result_rows(res)]
    lines += [
        "",
        f"`score` cost: {res['us_per_call']:.1f} µs per call (monthly-discounted CLV, "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{platform.machine()}; best of 5 passes over the {res['customers']} customers).",
        "",
        END,
    ]
    return "\n".join(lines)


def _write_docs(section: str) -> None:
    text = DOCS.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{DOCS}: the holdout markers are missing")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    DOCS.write_text(head + section + tail, encoding="utf-8")


if __name__ == "__main__":
    raise SystemExit(main())
