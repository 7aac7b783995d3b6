"""Churn ranking on a calibration/holdout split: the default policy's score, the score
with a model fitted on the calibration period, and days since the last order alone.

For each data set (simulated seeds, and any history file given in the input format),
events before the cut are replayed through the grading core and every customer with an
order before the cut is graded at the cut; the label is "no order in the holdout" (from
the cut to the end). Each score is judged by its ROC AUC for that label, ties counted
half, and by the largest share of those customers that hold one same score (a plateau
orders nobody). The model is fitted with `gradestream fit`'s code on the orders before
the cut only; its policy is the default plus `[churn.model]` as in
streams/policies/examples/with-model.toml.

    .venv/bin/python bench/holdout.py                           # seeds 1 2 3, print
    .venv/bin/python bench/holdout.py --history h.jsonl --cut 1997-10-01T00:00:00Z
    .venv/bin/python bench/holdout.py --write-docs              # and update docs/models.md
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import orjson
from rich.console import Console
from rich.table import Table

REPO: Final = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere, without installing

from streams.contracts import parse  # noqa: E402
from streams.core.policy import Policy, default_policy, policy_from_dict  # noqa: E402
from streams.models.history import fit_summary, read_history, summarize, to_epoch  # noqa: E402
from streams.models.model import Model  # noqa: E402
from streams.replay import Replayer  # noqa: E402
from streams.simulate import DEFAULT_START, SimConfig, generate, write_jsonl  # noqa: E402

DOCS: Final = REPO / "docs" / "models.md"
BEGIN: Final = "<!-- holdout:begin (written by bench/holdout.py --write-docs) -->"
END: Final = "<!-- holdout:end -->"
MODEL_POLICY: Final = REPO / "streams" / "policies" / "examples" / "with-model.toml"

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def auc(score: FloatArray, positive: BoolArray) -> float:
    """Area under the ROC curve: P(score of a random positive > a random negative), ties 1/2.

    Mann-Whitney U from average ranks (ties share their mean rank), in numpy.
    """
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(score, kind="mergesort")
    sorted_scores = score[order]
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    run_rank = first + (counts + 1) / 2.0
    ranks = np.empty(score.size)
    ranks[order] = np.repeat(run_rank, counts)
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def largest_share(score: FloatArray) -> float:
    """The largest fraction of the customers that hold one same score."""
    _, counts = np.unique(score, return_counts=True)
    return float(counts.max() / score.size) if score.size else float("nan")


@dataclass(frozen=True, slots=True)
class Result:
    label: str
    customers: int
    quiet: float  # share with no order in the holdout
    auc_default: float
    auc_model: float
    auc_recency: float
    share_default: float
    share_model: float
    seconds: float


def churn_scores(path: Path, cut: float, policy: Policy) -> dict[str, float]:
    """Replay the events of `path` that occurred before `cut` with `policy`; each
    customer's churn score at the cut."""
    replayer = Replayer(policy, lambda _: None, lambda _: None, source_name=path.name)
    lines = []
    with path.open("rb") as f:
        for line_no, line in enumerate(f, start=1):
            raw = line.rstrip(b"\r\n")
            parsed = parse(raw)
            when = to_epoch_or_none(parsed)
            if when is not None and when < cut:
                lines.append((line_no, raw, parsed))
    replayer.feed_chunk(lines)
    return {g["customer_id"]: g["churn"]["score"] for g in replayer.finish(math.floor(cut))}


def to_epoch_or_none(parsed: object) -> float | None:
    if not isinstance(parsed, dict):
        return None
    try:
        return to_epoch(parsed["occurred_at"])
    except (KeyError, TypeError, ValueError):
        return None


def model_policy(model: Model) -> Policy:
    """The example model policy (the default plus `[churn.model]`) with `model`."""
    data = tomllib.loads(MODEL_POLICY.read_text(encoding="utf-8"))
    return policy_from_dict(data, model=model)


def evaluate(label: str, path: Path, cut: float, end: float) -> Result:
    t0 = time.perf_counter()
    policy = default_policy()
    history = read_history(path, policy.currency.rates, policy.currency.base)
    summary = summarize(history, cut, end)
    model = fit_summary(summary, currency=policy.currency.base, source=path.name)
    ids = summary.customer_ids
    quiet = summary.holdout == 0
    recency = summary.T - summary.t_x
    default = churn_scores(path, cut, policy)
    with_model = churn_scores(path, cut, model_policy(model))
    d = np.array([default[i] for i in ids])
    m = np.array([with_model[i] for i in ids])
    return Result(
        label,
        len(ids),
        float(quiet.mean()),
        auc(d, quiet),
        auc(m, quiet),
        auc(recency, quiet),
        largest_share(d),
        largest_share(m),
        time.perf_counter() - t0,
    )


def simulated(seed: int, customers: int, days: int, calibration_days: int, tmp: Path) -> Result:
    path = tmp / f"sim-{seed}.jsonl"
    write_jsonl(generate(customers, days, seed, config=SimConfig(keys=False)), path)
    cut = (DEFAULT_START + timedelta(days=calibration_days)).timestamp()
    end = (DEFAULT_START + timedelta(days=days)).timestamp()
    return evaluate(f"simulated, seed {seed}", path, cut, end)


def from_file(path: Path, cut: str | None) -> Result:
    """A history file: the cut given, or the middle of its span; the holdout runs to just
    after its last event."""
    first, last = math.inf, -math.inf
    with path.open("rb") as f:
        for line in f:
            when = to_epoch_or_none(_loads(line))
            if when is not None:
                first, last = min(first, when), max(last, when)
    if not math.isfinite(first):
        raise SystemExit(f"{path}: no event with a readable occurred_at")
    at = (first + last) / 2 if cut is None else to_epoch(cut)
    return evaluate(path.name, path, at, last + 1)


def _loads(line: bytes) -> object:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return None


def table(results: list[Result]) -> Table:
    t = Table(title="churn ranking on the holdout (AUC for no order in the holdout)")
    for name in ("data", "customers", "quiet", "default", "fitted model", "recency", "share"):
        t.add_column(name, justify="left" if name == "data" else "right")
    for r in results:
        t.add_row(*_cells(r))
    return t


def _cells(r: Result) -> tuple[str, ...]:
    return (
        r.label,
        str(r.customers),
        f"{r.quiet:.3f}",
        f"{r.auc_default:.4f}",
        f"{r.auc_model:.4f}",
        f"{r.auc_recency:.4f}",
        f"{r.share_default:.1%} / {r.share_model:.1%}",
    )


def markdown(results: list[Result], cmd: str) -> str:
    lines = [
        BEGIN,
        "",
        f"`{cmd}`",
        "",
        "| data | customers | no order in the holdout | default | fitted model | recency "
        "| largest share on one score (default / model) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    lines += ["| " + " | ".join(_cells(r)) + " |" for r in results]
    lines += ["", END]
    return "\n".join(lines)


def write_docs(section: str) -> None:
    text = DOCS.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{DOCS}: the holdout markers are missing")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    DOCS.write_text(head + section + tail, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="*", default=[1, 2, 3])
    ap.add_argument("--customers", type=int, default=5000)
    ap.add_argument("--days", type=int, default=730)
    ap.add_argument("--calibration-days", type=int, default=365)
    ap.add_argument("--history", type=Path, action="append", default=[], help="JSONL events")
    ap.add_argument("--cut", help="RFC 3339 cut for --history (default: mid-span)")
    ap.add_argument("--write-docs", action="store_true", help=f"update {DOCS.relative_to(REPO)}")
    args = ap.parse_args(argv)
    con = Console()
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            results.append(
                simulated(seed, args.customers, args.days, args.calibration_days, Path(tmp))
            )
            con.print(f"{results[-1].label}: {results[-1].seconds:.1f} s")
    for path in args.history:
        results.append(from_file(path, args.cut))
        con.print(f"{results[-1].label}: {results[-1].seconds:.1f} s")
    con.print(table(results))
    if args.write_docs:
        given = argv if argv is not None else sys.argv[1:]
        cmd = "python bench/holdout.py " + " ".join(a for a in given if a != "--write-docs")
        write_docs(markdown(results, cmd.strip()))
        con.print(f"updated {DOCS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
