"""`gradestream replay --jobs N` grades partitions in N processes and merges their files:
the bytes written must not depend on N (streams/replay_jobs.py)."""

from __future__ import annotations

import random
from dataclasses import fields
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from streams import replay_jobs
from streams.cli import app
from streams.core.policy import load_policy
from streams.replay import ReplayStats
from streams.replay_jobs import replay_parallel
from streams.simulate import SimConfig, generate
from tests.replay.test_chunks import from_the_future

# Late and duplicated events, so that refusals, duplicates and sweeps all occur.
_CONFIG = SimConfig(late_rate=0.08, late_max_days=12.0, duplicate_rate=0.05)
# Lines no job can route by customer (job 0's), and one whose customer_id is no string.
_BAD = [
    b"",
    b"not json",
    b"[1, 2]",
    b'{"type": "order_placed"}',
    b'{"event_id": "x", "customer_id": 7, "type": "page_view"}',
]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    lines = [rec.value for rec in generate(400, 200, 11, config=_CONFIG)]
    rng = random.Random(11)
    from_the_future(lines, rng)
    for bad in _BAD:
        lines.insert(rng.randrange(len(lines)), bad)
    path = tmp_path_factory.mktemp("jobs") / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def _replay(
    source: Path, out: Path, jobs: int, partitions: int, as_of: int | None
) -> tuple[dict[str, bytes], ReplayStats]:
    out.mkdir()
    names = {"out": out / "out", "snap": out / "snap", "dlq": out / "dlq"}
    stats = replay_parallel(
        source,
        load_policy(),
        names["out"],
        names["snap"],
        names["dlq"],
        as_of=as_of,
        partitions=partitions,
        jobs=jobs,
    )
    return {name: path.read_bytes() for name, path in names.items()}, stats


def _counts(stats: ReplayStats) -> dict[str, object]:
    values = {f.name: getattr(stats, f.name) for f in fields(stats)}
    return {k: dict(v) if isinstance(v, dict) else v for k, v in values.items()}


@pytest.mark.parametrize("as_of", [None, 1_735_000_000])
@pytest.mark.parametrize("partitions", [4, 7])
def test_jobs_write_the_same_bytes(
    source: Path, tmp_path: Path, partitions: int, as_of: int | None
) -> None:
    want, want_stats = _replay(source, tmp_path / "j1", 1, partitions, as_of)
    # What the comparison must cover: every kind of record and refusal.
    assert want_stats.dead_letters["too_late"] > 0
    assert want_stats.dead_letters["from_the_future"] > 0
    assert want_stats.lines == source.read_bytes().count(b"\n")  # blank and bad lines too
    assert want_stats.dead_letters["invalid_json"] >= 2  # the blank line and "not json"
    assert want_stats.dead_letters["not_an_object"] >= 1
    assert want_stats.duplicates > 0
    assert want_stats.regraded_by_time > 0
    assert len(want_stats.outputs) == 4  # tier, churn, lifecycle changes and tier warnings
    for jobs in (2, 3):
        got, stats = _replay(source, tmp_path / f"j{jobs}", jobs, partitions, as_of)
        for name, data in want.items():
            assert got[name] == data, (jobs, name)
        assert _counts(stats) == _counts(want_stats), jobs


def test_more_jobs_than_partitions_is_fine(source: Path, tmp_path: Path) -> None:
    want, _ = _replay(source, tmp_path / "j1", 1, 2, None)
    got, _ = _replay(source, tmp_path / "j5", 5, 2, None)
    assert got == want


def test_a_failing_job_fails_the_replay(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = replay_jobs._grade_share

    def fail_job_1(*args: Any) -> Any:
        if args[6] == 1:  # j
            raise ValueError("job 1 broke")
        return real(*args)

    monkeypatch.setattr(replay_jobs, "_grade_share", fail_job_1)
    with pytest.raises(RuntimeError, match=r"(?s)replay job 1 failed.*job 1 broke"):
        _replay(source, tmp_path / "out", 2, 4, None)


def test_the_command_runs_jobs(source: Path, tmp_path: Path) -> None:
    written = []
    for jobs in ("1", "2"):
        out = tmp_path / jobs
        out.mkdir()
        args = ["replay", str(source), "--out", str(out / "o.jsonl")]
        args += ["--snapshot", str(out / "s.jsonl"), "--jobs", jobs]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        written.append([(out / n).read_bytes() for n in ("o.jsonl", "s.jsonl", "o.dlq.jsonl")])
    assert written[0] == written[1]


_REFUSED_ONLY = (
    b'{"event_id":"e1","customer_id":"only-xxx","occurred_at":"2025-06-01T10:00:00Z",'
    b'"type":"order_placed","order_id":"o1","amount":5,"currency":"XXX"}'
)
_APPLIED = (
    b'{"event_id":"e2","customer_id":"someone","occurred_at":"2025-06-01T11:00:00Z",'
    b'"type":"order_placed","order_id":"o2","amount":5,"currency":"USD"}'
)


@pytest.mark.parametrize("as_of", [None, 1_751_328_000])
@pytest.mark.parametrize("jobs", [1, 2])
def test_a_customer_with_no_applied_event_has_no_grade(
    tmp_path: Path, as_of: int | None, jobs: int
) -> None:
    source = tmp_path / "events.jsonl"
    source.write_bytes(_REFUSED_ONLY + b"\n" + _APPLIED + b"\n")
    got, stats = _replay(source, tmp_path / "out", jobs, 4, as_of)
    grades = [orjson.loads(line) for line in got["snap"].splitlines()]
    assert [g["customer_id"] for g in grades] == ["someone"]
    assert all(not g["as_of"].startswith("1970") for g in grades)
    assert stats.customers == 1
    assert stats.dead_letters["unknown_currency"] == 1
