"""`replay_file` feeds chunks customer by customer (`Replayer.feed_chunk`); it must write
exactly what feeding the lines one by one (`Replayer.feed`) writes, in the same order."""

from __future__ import annotations

import random
from dataclasses import fields
from pathlib import Path

import orjson
import pytest

from streams.core.policy import load_policy
from streams.replay import Replayer, ReplayStats, jsonl_writer, read_lines, replay_file
from streams.simulate import SimConfig, generate

# Late and duplicated events well beyond the simulator's defaults, so that too_late
# refusals, duplicates and sweeps between a customer's events all occur.
_CONFIG = SimConfig(late_rate=0.08, late_max_days=12.0, duplicate_rate=0.05)


def from_the_future(lines: list[bytes], rng: random.Random) -> None:
    """Date a few events far ahead of the stream (refused), and a few pairs of neighbours
    alike (the second may be taken as time having jumped: `streams.core.future`)."""
    for n in range(12):
        at = rng.randrange(len(lines) - 1)
        for i in (at, at + 1) if n % 3 == 0 else (at,):
            try:
                event = orjson.loads(lines[i])
            except orjson.JSONDecodeError:
                continue  # one of the simulator's bad lines
            if isinstance(event, dict) and "occurred_at" in event:
                event["occurred_at"] = "9999-12-31T23:59:59Z" if n % 2 else "2026-06-01T00:00:00Z"
                lines[i] = orjson.dumps(event)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    lines = [rec.value for rec in generate(300, 200, 5, config=_CONFIG)]
    # A few lines moved far back: refused as too late by some customers, not others.
    rng = random.Random(5)
    for _ in range(60):
        a, b = rng.randrange(len(lines)), rng.randrange(len(lines))
        lines[a], lines[b] = lines[b], lines[a]
    from_the_future(lines, rng)
    path = tmp_path_factory.mktemp("replay") / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n\n")  # a blank line: dead-lettered by both
    return path


def _facts(stats: ReplayStats) -> dict[str, object]:
    """The statistics, with each Counter as its items in order (the summary table's)."""
    values = {f.name: getattr(stats, f.name) for f in fields(stats)}
    return {k: list(v.items()) if isinstance(v, dict) else v for k, v in values.items()}


def _line_by_line(source: Path, partitions: int, as_of: int | None, out: Path) -> ReplayStats:
    policy = load_policy()
    with (
        (out / "out").open("wb") as o,
        (out / "dlq").open("wb") as d,
        (out / "snap").open("wb") as sn,
        source.open("rb") as src,
    ):
        r = Replayer(policy, jsonl_writer(o), jsonl_writer(d), str(source), partitions)
        for n, raw in read_lines(src):
            r.feed(n, raw)
        write = jsonl_writer(sn)
        for g in r.finish(as_of):
            write(g)
    return r.stats


@pytest.mark.parametrize("partitions", [1, 4])
@pytest.mark.parametrize("as_of", [None, 1_735_000_000])
def test_chunks_write_what_line_by_line_writes(
    source: Path, tmp_path: Path, partitions: int, as_of: int | None
) -> None:
    want_dir = tmp_path / "want"
    want_dir.mkdir()
    want_stats = _line_by_line(source, partitions, as_of, want_dir)
    want = {name: (want_dir / name).read_bytes() for name in ("out", "dlq", "snap")}
    assert want_stats.dead_letters["too_late"] > 0
    assert want_stats.dead_letters["from_the_future"] > 0
    assert want_stats.duplicates > 0
    assert want_stats.regraded_by_time > 0
    assert want_stats.lines == source.read_bytes().count(b"\n")  # the blank line too
    for chunk in (1, 7, 500, 1 << 20):
        got_dir = tmp_path / f"chunk{chunk}"
        got_dir.mkdir()
        stats = replay_file(
            source,
            load_policy(),
            got_dir / "out",
            got_dir / "snap",
            got_dir / "dlq",
            as_of=as_of,
            partitions=partitions,
            chunk_lines=chunk,
        )
        for name, data in want.items():
            assert (got_dir / name).read_bytes() == data, (chunk, name)
        # Counts and the order of the Counters' rows (the summary table's) too.
        assert _facts(stats) == _facts(want_stats), chunk


def test_an_event_from_the_future_changes_nothing_else(tmp_path: Path) -> None:
    """Issue 16: one event dated 2026-06-01 in a 2024 stream moved its partition's time,
    and `replay --partitions 4` then refused that partition's later events as too late.
    Now it alone is refused; every output and grade is as without it."""
    lines = [rec.value for rec in generate(200, 365, 3, config=SimConfig(keys=False))]
    event = orjson.loads(lines[len(lines) // 3])
    event |= {"event_id": "from-the-future", "occurred_at": "2026-06-01T00:00:00Z"}
    with_it = [*lines[: len(lines) // 3], orjson.dumps(event), *lines[len(lines) // 3 :]]
    files: dict[str, dict[str, bytes]] = {}
    stats: dict[str, ReplayStats] = {}
    for name, content in (("without", lines), ("with", with_it)):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "in.jsonl").write_bytes(b"\n".join(content) + b"\n")
        names = {kind: folder / kind for kind in ("out", "snap", "dlq")}
        stats[name] = replay_file(
            folder / "in.jsonl", load_policy(), names["out"], names["snap"], names["dlq"],
            partitions=4,
        )  # fmt: skip
        files[name] = {kind: path.read_bytes() for kind, path in names.items()}
    assert stats["with"].dead_letters - stats["without"].dead_letters == {"from_the_future": 1}
    assert files["with"]["out"] == files["without"]["out"]
    assert files["with"]["snap"] == files["without"]["snap"]
