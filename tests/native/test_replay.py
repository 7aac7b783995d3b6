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

import streams.policies
from streams import contracts
from streams.core import engine
from streams.core.errors import Rejection
from streams.core.policy import load_policy
from streams.core.state import encode
from streams.cores import Core, NativeCore, PythonCore, core_for
from streams.replay import CHUNK_LINES, ReplayStats, replay_file
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
    """A state graded under one policy_version, applied an event under another: the
    re-grade (cause policy_change) comes first, the same on both cores."""
    old, new = load_policy(None), load_policy(strict)
    events = [
        {
            "event_id": f"e{n}",
            "customer_id": "c-1",
            "type": "order_placed",
            "occurred_at": f"2024-0{n + 1}-10T12:00:00Z",
            "order_id": f"o{n}",
            "amount": 1000 * (n + 1),
            "currency": "USD",
        }
        for n in range(4)
    ]
    results = []
    cores: tuple[type[PythonCore] | type[NativeCore], ...] = (PythonCore, NativeCore)
    for core_of in cores:
        before: Core = core_of(old)
        after: Core = core_of(new)
        s = before.new_state("c-1")
        for ev in events[:3]:
            before.apply(s, ev, engine.event_time(ev))
        r = after.apply(s, events[3], engine.event_time(events[3]))
        results.append((r.outputs, encode(after.python(s))))
    assert results[0] == results[1]
    assert results[0][0][0]["cause"] == {"kind": "policy_change"}


def test_what_the_native_core_leaves_to_the_python_core() -> None:
    """Lines the native boundary leaves to `contracts.decode` (a fraction of a second, a
    nested extra field) are applied by the Python core to a copy of the state, which the
    native state takes back; an event the core refuses (an unknown currency) is refused
    by the Python core, with its reason. Each gives the Python core's own result, and
    the events after run natively again."""
    policy = load_policy(None)
    base = {"customer_id": "c-1", "type": "page_view"}
    events: list[dict[str, Any]] = [
        {"occurred_at": "2024-01-10T12:00:00.5Z"},
        {"occurred_at": "2024-01-10T13:00:00Z", "extra": {"nested": [1]}},
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
    ]
    lines = [orjson.dumps(base | {"event_id": f"e{n}"} | e) for n, e in enumerate(events)]
    py, rs = PythonCore(policy), NativeCore(policy)
    read = [rs.decode(raw) for raw in lines]
    assert [ev is None for ev in read] == [True, True, False, False, False]
    a, b = py.new_state("c-1"), rs.new_state("c-1")
    for raw, fast in zip(lines, read, strict=True):
        decoded = contracts.decode(raw)
        assert not isinstance(decoded, Rejection)
        at = engine.event_time(decoded.event)
        ra = py.apply(a, decoded.event, at)
        rb = rs.apply(b, decoded.event if fast is None else fast, at)
        assert (ra.outputs, ra.changed, ra.rejection) == (rb.outputs, rb.changed, rb.rejection)
        assert encode(a) == b.encode()
    assert a.seq == 4  # the unknown currency refused, every other event applied


def test_core_for_picks_the_native_core_unless_the_policy_has_a_model() -> None:
    assert isinstance(core_for(load_policy(None)), NativeCore)
    model = load_policy(EXAMPLES / "with-model.toml")
    assert isinstance(core_for(model), PythonCore)
    with pytest.raises(ValueError, match="churn model"):
        core_for(model, native=True)
