"""The grading side of `gradestream bootstrap`, without a broker: replay up to an instant
(`Replayer.until`), and the states the jobs keep for the worker's table
(`streams.bootstrap`)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from streams.app.states import unframe
from streams.bootstrap import grade_records, keep_states, partition_times, table_records
from streams.contracts import decode
from streams.core.engine import event_time
from streams.core.errors import Rejection
from streams.core.policy import load_policy
from streams.core.state import decode as decode_state
from streams.core.state import encode
from streams.replay import Replayer, replay_file
from streams.replay_jobs import replay_parallel
from streams.schedule import partition_of
from streams.simulate import SimConfig, generate, write_jsonl

PARTITIONS = 4


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bootstrap") / "history.jsonl"
    write_jsonl(generate(150, 120, 5, config=SimConfig(keys=False)), path)
    return path


def _time(line: bytes) -> int | None:
    """The event time of a line that is an event (a bad line is a dead letter, whenever)."""
    decoded = decode(line)
    return None if isinstance(decoded, Rejection) else event_time(decoded.event)


def test_until_leaves_out_the_events_at_or_after_it(history: Path, tmp_path: Path) -> None:
    """Replay up to T applies what replay of the events before T applies (a file whose
    later events are left out), and counts the others."""
    lines = history.read_bytes().splitlines()
    times = sorted(t for t in map(_time, lines) if t is not None)
    until = times[len(times) // 2]
    before = tmp_path / "before.jsonl"
    before.write_bytes(b"".join(line + b"\n" for line in lines if (_time(line) or 0) < until))

    kept: dict[str, list[Replayer]] = {"until": [], "before": []}
    stats = replay_file(
        history, load_policy(), tmp_path / "o1", tmp_path / "s1", tmp_path / "d1",
        partitions=PARTITIONS, until=until, finished=kept["until"].append,
    )  # fmt: skip
    replay_file(
        before, load_policy(), tmp_path / "o2", tmp_path / "s2", tmp_path / "d2",
        partitions=PARTITIONS, finished=kept["before"].append,
    )  # fmt: skip
    assert stats.later == sum(1 for t in map(_time, lines) if t is not None and t >= until)
    assert stats.later > 0
    (a,), (b,) = kept["until"], kept["before"]
    assert {c: encode(s) for c, s in a.states.items()} == {
        c: encode(s) for c, s in b.states.items()
    }
    assert a.times == b.times
    assert (tmp_path / "o1").read_bytes() == (tmp_path / "o2").read_bytes()
    assert (tmp_path / "s1").read_bytes() == (tmp_path / "s2").read_bytes()


@pytest.mark.parametrize("jobs", [1, 3])
def test_the_jobs_keep_every_state_for_the_partition_of_the_worker_table(
    history: Path, tmp_path: Path, jobs: int
) -> None:
    reference: list[Replayer] = []
    replay_file(
        history, load_policy(), tmp_path / "ro", tmp_path / "rs", tmp_path / "rd",
        partitions=PARTITIONS, finished=reference.append,
    )  # fmt: skip
    work = tmp_path / "work"
    work.mkdir()
    replay_parallel(
        history, load_policy(), work / "out.jsonl", work / "snapshot.jsonl", work / "dlq",
        partitions=PARTITIONS, jobs=jobs, finished=keep_states(work),
    )  # fmt: skip
    (replayer,) = reference
    table = list(table_records(work))
    assert len(table) == len(replayer.states)
    for partition, key, value in table:
        customer_id = key.decode()
        assert partition == partition_of(customer_id, PARTITIONS)
        applied, encoded = unframe(value)
        assert applied == {}  # no input offsets: the history is no topic
        assert encoded == encode(replayer.states[customer_id])
        assert decode_state(encoded).customer_id == customer_id
    assert partition_times(work) == replayer.times
    grades = list(grade_records(work / "snapshot.jsonl"))
    assert [key.decode() for key, _ in grades] == sorted(replayer.states)
    assert all(orjson.loads(value)["customer_id"] == key.decode() for key, value in grades)
