"""Replay throughput against merely parsing the same file, with memory and state sizes.

Simulates (streams.simulate.generate, as `gradestream simulate --out` does) a file of at
least a million events, cached under .local/bench/ by its parameters, then measures in
one run:

* parse: orjson.loads of every line (the floor any replay pays);
* decode: parse + the input contract (schemas, the checks of streams.contracts);
* replay with `--jobs 1`: `streams.replay.replay_file` to temporary outputs (decode +
  apply + time steps + writes + final snapshots) in this process, events (lines) per
  second, and the ratio replay / parse;
* replay with `--jobs 2` (and any other `--jobs` asked for): `streams.replay_jobs`, the
  partitions graded in that many processes and merged, and its speed-up over `--jobs 1`;
* peak memory (maxrss) and the encoded state per customer (median, p95, max), plus a
  deliberately heavy customer (an order a day, 30 interactions a day, a weekly complaint,
  two years).

    .venv/bin/python bench/replay_bench.py                  # print the table
    .venv/bin/python bench/replay_bench.py --write-docs     # and update docs/benchmarks.md

Every run writes its figures to bench/results/replay_bench.json. Compare figures as
ratios within one run: on a shared machine the absolute rates move with its load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import orjson
from rich.console import Console
from rich.table import Table

REPO: Final = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere, without installing

from streams import replay  # noqa: E402
from streams.contracts import decode  # noqa: E402
from streams.core.engine import apply, new_state  # noqa: E402
from streams.core.policy import load_policy  # noqa: E402
from streams.core.state import encode  # noqa: E402
from streams.core.timefmt import format_rfc3339  # noqa: E402
from streams.replay_jobs import replay_parallel  # noqa: E402
from streams.simulate import SimConfig, generate, write_jsonl  # noqa: E402

DOCS: Final = REPO / "docs" / "benchmarks.md"
CACHE: Final = REPO / ".local" / "bench"
BEGIN: Final = "<!-- replay-bench:begin (written by bench/replay_bench.py --write-docs) -->"
END: Final = "<!-- replay-bench:end -->"
RESULTS: Final = REPO / "bench" / "results" / "replay_bench.json"
PARTITIONS: Final = 4  # the worker's default, and replay's
MIN_EVENTS: Final = 1_000_000
console = Console()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=28_000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument(
        "--jobs", default="2", help="comma-separated job counts to time besides 1 (default: 2)"
    )
    ap.add_argument("--write-docs", action="store_true", help=f"update {DOCS.relative_to(REPO)}")
    args = ap.parse_args(argv)

    source = _simulated(args.customers, args.days, args.seed)
    with source.open("rb") as f:
        lines = sum(1 for _ in replay.read_lines(f))
    if lines < MIN_EVENTS:
        console.print(f"[yellow]only {lines:,} events (< {MIN_EVENTS:,}): raise --customers")
    size = source.stat().st_size

    load_before = os.getloadavg()[0]
    parse_s = _best(3, lambda: _parse_only(source))
    decode_s = _best(1, lambda: _decode_only(source))
    # Best of two rounds, each timing --jobs 1 then every other count, before the run that
    # keeps its states (so that no job is forked from a parent holding them): on a shared
    # machine single runs vary by a fifth.
    counts = [int(n) for n in args.jobs.split(",") if n.strip()]
    rounds = [
        {n: timed_jobs(source, n) for n in (1, *counts)} for _ in range(2)
    ]  # fmt: skip
    parallel = {n: min(r[n] for r in rounds) for n in counts}
    rss_before = _maxrss_mib()
    replay_s, stats, states = timed_replay(source)
    rss_after = _maxrss_mib()
    replay_s = min(replay_s, *(r[1] for r in rounds))
    sizes = sorted(len(encode(s)) for s in states)
    heavy = _heavy_customer_bytes()

    res: dict[str, Any] = {
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "lines": lines,
        "bytes": size,
        "customers": len(states),
        "applied": stats.applied,
        "regraded": stats.regraded_by_time,
        "outputs": sum(stats.outputs.values()),
        "parse_eps": lines / parse_s,
        "decode_eps": lines / decode_s,
        "replay_eps": lines / replay_s,
        "replay_s": replay_s,
        "us_per_event": replay_s / lines * 1e6,
        "us_core": (replay_s - decode_s) / lines * 1e6,
        "ratio": parse_s / replay_s,
        "rss_before": rss_before,
        "rss_peak": rss_after,
        "state_median": statistics.median(sizes),
        "state_p95": sizes[int(0.95 * (len(sizes) - 1))],
        "state_max": sizes[-1],
        "heavy": heavy,
        "jobs": {
            n: {"eps": lines / t, "seconds": t, "speedup": replay_s / t}
            for n, t in parallel.items()
        },
        "cpus": os.cpu_count(),
        "commit": _commit(),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8")
    _print(res)
    if args.write_docs:
        cmd = "bench/replay_bench.py" + "".join(
            f" --{k} {getattr(args, k)}" for k in ("customers", "days", "seed")
        )
        _write_docs(_section(res, args, cmd))
        console.print(f"updated {DOCS.relative_to(REPO)}")
    return 0


def _simulated(customers: int, days: int, seed: int) -> Path:
    path = CACHE / f"sim-c{customers}-d{days}-s{seed}.jsonl"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        console.print(f"simulating {customers:,} customers x {days} days (seed {seed}) -> {path}")
        tmp = path.with_suffix(".tmp")
        write_jsonl(generate(customers, days, seed, config=SimConfig(keys=False)), tmp)
        tmp.rename(path)
    return path


def _best(n: int, run: Callable[[], float]) -> float:
    return min(run() for _ in range(n))


def _parse_only(source: Path) -> float:
    loads, error = orjson.loads, orjson.JSONDecodeError
    started = time.perf_counter()
    with source.open("rb") as f:
        for _, raw in replay.read_lines(f):
            try:  # noqa: SIM105 (suppress() would cost the floor a context manager per line)
                loads(raw)
            except error:
                pass
    return time.perf_counter() - started


def _decode_only(source: Path) -> float:
    started = time.perf_counter()
    with source.open("rb") as f:
        for _, raw in replay.read_lines(f):
            decode(raw)
    return time.perf_counter() - started


def timed_replay(source: Path) -> tuple[float, replay.ReplayStats, list[Any]]:
    """Time `replay_file` itself; keep its Replayer to measure the states afterwards
    (bench/stream_bench.py takes its states from here too)."""
    captured: list[replay.Replayer] = []
    policy = load_policy()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        started = time.perf_counter()
        stats = replay.replay_file(
            source, policy, d / "o", d / "s", d / "dlq", partitions=PARTITIONS,
            finished=captured.append,
        )  # fmt: skip
        elapsed = time.perf_counter() - started
    replayer = captured[0]
    return elapsed, stats, list(replayer.states.values())


def timed_jobs(source: Path, jobs: int) -> float:
    """Seconds of `gradestream replay --jobs N` (without its progress bar and table)."""
    policy = load_policy()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        started = time.perf_counter()
        replay_parallel(
            source, policy, d / "o", d / "s", d / "dlq", partitions=PARTITIONS, jobs=jobs
        )
        return time.perf_counter() - started


def _heavy_customer_bytes() -> int:
    """An order every day, 30 interactions a day, a complaint a week, for two years."""
    policy = load_policy()
    rng = random.Random(7)
    kinds = ("page_view", "app_open", "site_visit", "email_open", "store_visit", "inquiry")
    s = new_state("heavy")
    t0 = 1_704_067_200
    biggest = 0
    for d in range(730):
        t = t0 + d * 86_400
        evs: list[dict[str, Any]] = [
            {
                "event_id": f"o{d}",
                "customer_id": "heavy",
                "occurred_at": format_rfc3339(t + 3600),
                "type": "order_placed",
                "order_id": f"order-{d:08d}",
                "amount": 50,
                "currency": "USD",
            }
        ]
        evs += [
            {
                "event_id": f"i{d}-{j}",
                "customer_id": "heavy",
                "occurred_at": format_rfc3339(t + 7200 + j * 60),
                "type": rng.choice(kinds),
            }
            for j in range(30)
        ]
        if d % 7 == 0:
            evs.append(
                {
                    "event_id": f"k{d}",
                    "customer_id": "heavy",
                    "occurred_at": format_rfc3339(t + 9000),
                    "type": "complaint_opened",
                    "complaint_id": f"K{d}",
                    "category": "delivery",
                    "severity": "low",
                }
            )
        for ev in evs:
            apply(s, ev, policy)
        biggest = max(biggest, len(encode(s)))
    return biggest


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _rows(res: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        ("events (lines)", f"{res['lines']:,} ({res['bytes'] / 1e6:,.0f} MB)"),
        ("customers", f"{res['customers']:,}"),
        ("applied / re-graded by time / outputs",
         f"{res['applied']:,} / {res['regraded']:,} / {res['outputs']:,}"),
        ("(a) parse only (orjson)", f"{res['parse_eps']:,.0f} events/s"),
        ("decode (parse + contract)", f"{res['decode_eps']:,.0f} events/s"),
        ("(b) replay --jobs 1 (decode, apply, writes)", f"{res['replay_eps']:,.0f} events/s"),
        ("replay per event / of which after decode",
         f"{res['us_per_event']:.2f} µs / {res['us_core']:.2f} µs"),
        ("ratio b / a", f"{res['ratio']:.1%}"),
        *(
            (f"replay --jobs {n} / its speed-up over --jobs 1",
             f"{r['eps']:,.0f} events/s / {r['speedup']:.2f}x")
            for n, r in res["jobs"].items()
        ),
        ("peak RSS (before replay / after)",
         f"{res['rss_before']:,.0f} MiB / {res['rss_peak']:,.0f} MiB"),
        ("encoded state per customer: median / p95 / max",
         f"{res['state_median']:,.0f} / {res['state_p95']:,} / {res['state_max']:,} bytes"),
        ("heavy customer (2 years, ~31 events a day)", f"{res['heavy']:,} bytes"),
    ]  # fmt: skip


def _print(res: dict[str, Any]) -> None:
    table = Table(title="replay benchmark")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for a, b in _rows(res):
        table.add_row(a, b)
    console.print(table)


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def _core_kind() -> str:
    """Whether streams/core runs compiled (setup.py builds it with mypyc) or as Python."""
    from streams.core import engine

    if engine.__file__ and engine.__file__.endswith(".py"):
        return "pure Python (no compiled extensions installed)"
    return "compiled with mypyc (streams/core/*.so, setup.py)"


def _section(res: dict[str, Any], args: argparse.Namespace, cmd: str) -> str:
    lines = [
        BEGIN,
        "",
        f"Machine: {os.cpu_count()} CPUs (nproc), {_cpu()}; "
        f"{platform.python_implementation()} {platform.python_version()}. "
        f"Commit {_commit()} (plus any uncommitted changes of that run).",
        "",
        f"Grading core: {_core_kind()}. "
        f"Load average (1 min) {res['load_before']:.1f} before the run (above ~0.5, "
        f"something else was running), {res['load_after']:.1f} after it.",
        "",
        f"Command: `.venv/bin/python {cmd}` ({args.customers:,} simulated customers over "
        f"{args.days} days, seed {args.seed}; the file is cached in `.local/bench/`).",
        "",
        "| measure | value |",
        "|---|---:|",
    ]
    lines += [f"| {a} | {b} |" for a, b in _rows(res)]
    lines += ["", END]
    return "\n".join(lines)


def _write_docs(section: str) -> None:
    text = DOCS.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{DOCS}: the replay-bench markers are missing")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    DOCS.write_text(head + section + tail, encoding="utf-8")


if __name__ == "__main__":
    raise SystemExit(main())
