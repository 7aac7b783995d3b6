"""Replay on the native core writes what it writes on the Python core, byte for byte:
the outputs, the snapshots, the dead letters and the statistics (docs/grading.md,
"Native hot path")."""

from __future__ import annotations

import random
from dataclasses import fields
from pathlib import Path
from typing import Any

import orjson
import pytest

import streams._native as native
import streams.policies
from streams import contracts
from streams.core import engine
from streams.core.errors import Rejection
from streams.core.policy import load_policy
from streams.core.state import encode
from streams.native import outputs_of
from streams.replay import CHUNK_LINES, Replayer, ReplayStats, replay_file
from streams.simulate import SimConfig, generate

EXAMPLES = Path(__file__).parents[2] / "streams/policies/examples"
# Late and duplicated events well beyond the simulator's defaults, complainers and
# surveys: every refusal, sweeps between a customer's events, every kind of output.
_CONFIG = SimConfig(late_rate=0.08, late_max_days=12.0, duplicate_rate=0.05)


def _odd_lines() -> list[bytes]:
    """Valid lines the simulator does not write: an unknown currency, a refund of an
    order never seen, a re-placed order with a discount, a survey answered as 3.0."""
    base = {"customer_id": "c-odd", "occurred_at": "2024-10-28T10:00:00Z"}
    events: list[dict[str, Any]] = [
        {"type": "order_placed", "order_id": "o1", "amount": 12.5, "currency": "XXX"},
        {"type": "order_placed", "order_id": "o1", "amount": 900, "currency": "EUR"},
        {
            "type": "order_placed",
            "order_id": "o1",
            "amount": 90,
            "currency": "EUR",
            "discount": 810,
        },
        {"type": "order_refunded", "order_id": "o9", "amount": 5, "currency": "USD"},
        {"type": "survey_response", "nps": 3.0, "csat": 1},
        {
            "type": "complaint_opened",
            "complaint_id": "k1",
            "severity": "high",
            "category": "billing",
        },
        {"type": "order_cancelled", "order_id": "o1", "amount": 0, "currency": "EUR"},
    ]
    return [orjson.dumps(base | {"event_id": f"odd-{n}"} | e) for n, e in enumerate(events)]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    lines = [rec.value for rec in generate(400, 300, 17, config=_CONFIG)]
    rng = random.Random(17)
    for _ in range(80):  # lines moved far back: too late for some customers, not others
        a, b = rng.randrange(len(lines)), rng.randrange(len(lines))
        lines[a], lines[b] = lines[b], lines[a]
    lines += _odd_lines()  # after the simulation's last day, so that none is too late
    path = tmp_path_factory.mktemp("native-replay") / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def _facts(stats: ReplayStats) -> dict[str, object]:
    values = {f.name: getattr(stats, f.name) for f in fields(stats)}
    return {k: list(v.items()) if isinstance(v, dict) else v for k, v in values.items()}


def _replay(
    source: Path, out: Path, native_core: bool, policy_file: Path | None = None, **kw: Any
) -> tuple[bytes, bytes, bytes, dict[str, object]]:
    out.mkdir()
    stats = replay_file(
        source,
        load_policy(policy_file),
        out / "out",
        out / "snap",
        out / "dlq",
        native=native_core,
        **kw,
    )
    files = ((out / n).read_bytes() for n in ("out", "snap", "dlq"))
    return (*files, _facts(stats))  # type: ignore[return-value]


@pytest.mark.parametrize("partitions", [1, 4])
@pytest.mark.parametrize("as_of", [None, 1_735_000_000])
@pytest.mark.parametrize("chunk_lines", [CHUNK_LINES, 50])
def test_native_replay_writes_what_the_python_core_writes(
    source: Path, tmp_path: Path, partitions: int, as_of: int | None, chunk_lines: int
) -> None:
    kw: dict[str, Any] = {"partitions": partitions, "as_of": as_of, "chunk_lines": chunk_lines}
    python = _replay(source, tmp_path / "py", False, **kw)
    rust = _replay(source, tmp_path / "rs", True, **kw)
    assert rust[3] == python[3]
    assert rust[:3] == python[:3]
    # Not a vacuous equality: every kind of output, refusal and sweep came up.
    stats = python[3]
    kinds = dict(stats["outputs"])  # type: ignore[call-overload]
    assert set(kinds) == {"tier_changed", "churn_risk_changed", "lifecycle_changed"}, kinds
    refused = dict(stats["dead_letters"])  # type: ignore[call-overload]
    assert {"too_late", "unknown_currency"} <= set(refused), refused
    assert stats["duplicates"]
    assert stats["regraded_by_time"]
    causes = {o["cause"]["kind"] for o in map(orjson.loads, python[0].splitlines())}
    assert causes == {"event", "inactivity"}


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default policy with higher rungs, no tier grace and another version."""
    text = (Path(streams.policies.__file__).parent / "default.toml").read_text("utf-8")
    for old, new in (
        ('policy_version = "default-1"', 'policy_version = "strict-1"'),
        ("downgrade_grace_days = 30", "downgrade_grace_days = 0"),
        ("min_orders = 2 ", "min_orders = 3 "),
        ("min_spend = 50000.0", "min_spend = 5000.0"),
    ):
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path_factory.mktemp("policy") / "strict.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_native_replay_under_another_policy(source: Path, tmp_path: Path, strict: Path) -> None:
    python = _replay(source, tmp_path / "py", False, strict, as_of=1_735_000_000)
    rust = _replay(source, tmp_path / "rs", True, strict, as_of=1_735_000_000)
    assert rust == python


def test_a_policy_change_regrades_alike(strict: Path) -> None:
    """A state graded under one policy_version, given an event under another: the
    re-grade (cause policy_change) comes first, the same on both cores (the native loop
    never meets one: its states are all of its policy; the worker's are not)."""
    old, new = load_policy(None), load_policy(strict)
    lines = [
        orjson.dumps(
            {
                "event_id": f"e{n}",
                "customer_id": "c-1",
                "type": "order_placed",
                "occurred_at": f"2024-0{n + 1}-10T12:00:00Z",
                "order_id": f"o{n}",
                "amount": 1000 * (n + 1),
                "currency": "USD",
            }
        )
        for n in range(4)
    ]
    events = [contracts.decode(raw) for raw in lines]
    py = engine.new_state("c-1")
    for d in events[:3]:
        assert not isinstance(d, Rejection)
        engine.apply(py, d.event, old)
    rs = native.State.decode(encode(py))
    last = events[3]
    assert not isinstance(last, Rejection)
    want = engine.apply(py, last.event, new).outputs

    fold = native.Policy(new.compiled)
    decoder = native.Decoder(contracts.schema_sources(), contracts.TOPIC_OF_TYPE, fold)
    event = decoder.decode(lines[3])
    assert event is not None
    assert rs.apply(event, fold) == native.STEPPED
    got = outputs_of(rs.take_steps(fold), new.compiled)
    assert got == want
    assert rs.encode() == encode(py)
    assert [o["cause"]["kind"] for o in got][:1] == ["policy_change"]


def _lines(events: list[dict[str, Any]]) -> list[tuple[int, bytes]]:
    base = {"customer_id": "c-1", "type": "page_view"}
    return [(n + 1, orjson.dumps(base | {"event_id": f"e{n}"} | e)) for n, e in enumerate(events)]


def test_what_the_native_loop_leaves_to_the_python_core() -> None:
    """Lines the native boundary leaves to `contracts.decode` (a fraction of a second, a
    nested extra field, a refusal) and an event the native core leaves to the Python
    core (an unknown currency: refused with its reason) give what the Python core gives,
    and the events after run natively again."""
    policy = load_policy(None)
    lines = _lines(
        [
            {"occurred_at": "2024-01-10T12:00:00.5Z"},
            {"occurred_at": "2024-01-10T13:00:00Z", "extra": {"nested": [1]}},
            {"occurred_at": "2024-01-10T13:30:00Z", "type": "no_such_type"},
            {
                "occurred_at": "2024-01-10T14:00:00Z",
                "type": "order_placed",
                "order_id": "o1",
                "amount": 20,
                "currency": "XXX",
            },
            {
                "occurred_at": "2024-01-10T15:00:00Z",
                "type": "order_placed",
                "order_id": "o1",
                "amount": 4000,
                "currency": "EUR",
            },
            {"occurred_at": "2024-01-11T15:00:00Z"},
            {"occurred_at": "2024-01-11T15:00:00Z", "event_id": "e5"},  # a duplicate
        ]
    )
    fold = native.Policy(policy.compiled)
    decoder = native.Decoder(contracts.schema_sources(), contracts.TOPIC_OF_TYPE, fold)
    assert [decoder.decode(raw) is None for _, raw in lines] == [
        True,
        True,
        True,
        False,
        False,
        False,
        False,
    ]
    written = []
    for use in (False, True):
        out: list[dict[str, Any]] = []
        dead: list[dict[str, Any]] = []
        r = Replayer(policy, out.append, dead.append, native=use)
        assert r.core == ("native" if use else "python")
        r.feed_chunk(lines)
        written.append((out, dead, _facts(r.stats), encode(r.python_states()["c-1"])))
    assert written[0] == written[1]
    out, dead, stats, _ = written[0]
    assert [d["rejection"]["code"] for d in dead] == ["unknown_type", "unknown_currency"]
    assert stats["applied"] == 4
    assert stats["duplicates"] == 1


def test_the_native_loop_unless_the_policy_has_a_churn_model() -> None:
    assert Replayer(load_policy(None), print, print).core == "native"
    model = load_policy(EXAMPLES / "with-model.toml")
    assert Replayer(model, print, print).core == "python"
    with pytest.raises(ValueError, match="churn model"):
        Replayer(model, print, print, native=True)
