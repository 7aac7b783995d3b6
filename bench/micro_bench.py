"""Two small per-call costs, printed as figures rather than asserted in tests:

* the simulator's generation rate (`streams.simulate.generate`, 4,000 customers over a
  year), whose target is 200k events/s or more: it feeds every benchmark and the demo;
* one churn-and-value model score (`streams.models.model.score`, discounted monthly, the
  most expensive setting), which the core calls when a policy carries a fitted model.

    .venv/bin/python bench/micro_bench.py

Writes bench/results/micro_bench.json. On a shared machine the rates move with its
load (printed): compare them within one run.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Final

from rich.console import Console
from rich.table import Table

REPO: Final = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere, without installing

from streams.models.bgnbd import BgNbdParams  # noqa: E402
from streams.models.gamma_gamma import GammaGammaParams  # noqa: E402
from streams.models.model import Model, score  # noqa: E402
from streams.simulate import generate  # noqa: E402

RESULTS: Final = REPO / "bench" / "results" / "micro_bench.json"


def generation_rate() -> tuple[int, float]:
    began = time.perf_counter()
    n = sum(1 for _ in generate(4000, 365, 9))
    return n, n / (time.perf_counter() - began)


def score_seconds() -> float:
    """Seconds per `score` call of a model with CDNOW-like parameters (in days)."""
    model = Model(
        "bench-1",
        "USD",
        BgNbdParams(r=0.243, alpha=4.414 * 7, a=0.793, b=2.426),
        GammaGammaParams(p=6.25, q=3.74, v=15.44),
        monthly_discount=0.01,
    )
    calls = [(x, 10.0 * x, 30.0 + 12.0 * x, 45.0) for x in range(60)] * 40
    began = time.perf_counter()
    for x, t_x, age, m in calls:
        score(model, x, t_x, age, m)
    return (time.perf_counter() - began) / len(calls)


def main() -> int:
    load = os.getloadavg()[0]
    events, rate = generation_rate()
    per_score = score_seconds()
    res = {
        "load_before": load,
        "generated_events": events,
        "generation_eps": rate,
        "score_us": per_score * 1e6,
    }
    table = Table(title=f"micro benchmarks (load average {load:.1f} before)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("simulate: events generated per second", f"{rate:,.0f} ({events:,} events)")
    table.add_row("model score per call", f"{per_score * 1e6:.1f} µs")
    Console().print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
