"""The grading step, without Faust or a broker: records in, sends and states out."""

from __future__ import annotations

import base64
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from streams.app.clock import Clock
from streams.app.grading_step import GradingStep, Record, Routes
from streams.app.progress import marker_key, read_marker
from streams.app.shadow import SHADOW_PREFIX, Shadow
from streams.app.states import Batch, DictTable, StateStore, unframe
from streams.core.engine import snapshot
from streams.core.future import ahead_of_stream_seconds
from streams.core.policy import Policy, load_policy, policy_from_dict
from streams.core.state import decode as decode_state
from streams.core.state import encode as encode_state
from streams.replay import Replayer
from streams.simulate import SimConfig, SimRecord, generate
from tests.core.builders import DAY, T0, interaction, order
from tests.core.models import default_doc

ROUTES = Routes(
    carries={"orders": ("orders",), "interactions": ("interactions",)},
    outputs={
        "tier_changed": "tier-changes",
        "churn_risk_changed": "churn-risk",
        "lifecycle_changed": "lifecycle-changes",
        "tier_warning": "tier-warnings",
    },
    grades="customer-grades",
    dead_letters="dlq",
)


@dataclass
class Worker:
    """A grading step over a dict table, fed batch by batch as the agents feed it."""

    policy: Policy
    clock_kind: str = "wall"
    table: DictTable | CountingTable = field(default_factory=DictTable)
    offsets: Iterator[int] = field(default_factory=itertools.count)
    shadow_policy: Policy | None = None
    cache_size: int = 0

    def __post_init__(self) -> None:
        ahead = ahead_of_stream_seconds(self.policy)
        clock = Clock("event" if self.clock_kind == "event" else "wall", 86_400, ahead)
        shadow = None
        if self.shadow_policy is not None:
            shadow = Shadow(self.shadow_policy, self.table, "shadow-grades")
        store = StateStore(self.table, self.cache_size)
        self.step = GradingStep(self.policy, clock, store, ROUTES, shadow)

    def record(
        self, body: dict[str, Any] | bytes, key: bytes | str | None = "", topic: str = "orders"
    ) -> Record:
        """A record at the next offset of partition 0, keyed by its customer unless said."""
        value = body if isinstance(body, bytes) else orjson.dumps(body)
        if key == "":
            key = body["customer_id"].encode() if isinstance(body, dict) else None
        elif isinstance(key, str):
            key = key.encode()
        return Record(topic, 0, next(self.offsets), key, value, 0.0)

    def batch(self, *records: Record, ticks: tuple[Record, ...] = ()) -> Batch:
        """Records, then ticks, then finish and persist, as an agent's batch does."""
        batch = self.step.store.batch()
        for record in records:
            self.step.record(record, batch)
        for tick in ticks:
            self.step.tick(tick, batch)
        self.step.finish(batch)
        self.step.persist(batch)
        return batch

    def state(self, customer_id: str) -> tuple[dict[str, int], Any] | None:
        raw = self.table.data.get(customer_id.encode())
        if raw is None:
            return None
        applied, encoded = unframe(raw)
        return applied, decode_state(encoded)


def tick(customer_id: str, now: int) -> Record:
    return Record("ticks", 0, 0, customer_id.encode(), str(now).encode(), 0.0)


def sent(batch: Batch, topic: str) -> list[dict[str, Any]]:
    return [orjson.loads(s.value) for s in batch.sends if s.topic == topic]


def keyed(record: SimRecord) -> SimRecord:
    """Keyed by customer_id, as a well-behaved producer sends it (a file has no keys)."""
    try:
        body = orjson.loads(record.value)
    except orjson.JSONDecodeError:
        return record
    customer = body.get("customer_id") if isinstance(body, dict) else None
    key = customer.encode() if isinstance(customer, str) else record.key
    return SimRecord(record.topic, key, record.value)


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy()


def test_an_order_is_graded_published_and_persisted(policy: Policy) -> None:
    worker = Worker(policy)
    batch = worker.batch(worker.record(order("e1", T0, 120.0)))
    [change] = sent(batch, "lifecycle-changes")
    assert (change["previous_stage"], change["stage"]) == ("prospect", "new")
    [grade] = sent(batch, "customer-grades")
    assert (grade["customer_id"], grade["seq"]) == ("cust-1", 1)
    assert [s.topic for s in batch.sends][-1] == "customer-grades"  # grades last
    stored = worker.state("cust-1")
    assert stored is not None
    assert stored[0] == {"orders": 1}  # the offset after the record, kept with the state
    assert read_marker(worker.table.data[marker_key("orders", 0)]) == (1, T0)
    assert worker.step.clock.due(0).next_due() == stored[1].due


@pytest.mark.parametrize(
    ("value", "key", "code"),
    [
        (b"{not json", "cust-1", "invalid_json"),
        (orjson.dumps(order("e1", T0, -5.0)), "cust-1", "schema_violation"),
        (orjson.dumps(order("e1", T0, 5.0)), "cust-2", "key_mismatch"),
        (orjson.dumps(interaction("e1", T0, "page_view")), "cust-1", "wrong_topic"),
        (orjson.dumps(order("e1", T0, 5.0, currency="XXX")), "cust-1", "unknown_currency"),
        (orjson.dumps(order("e1", 4_102_444_800, 5.0)), "cust-1", "from_the_future"),
    ],
)
def test_a_bad_record_is_a_dead_letter_and_progress_goes_on(
    policy: Policy, value: bytes, key: str, code: str
) -> None:
    worker = Worker(policy)
    batch = worker.batch(worker.record(value, key))
    [letter] = sent(batch, "dlq")
    assert letter["rejection"]["code"] == code, letter["rejection"]
    assert letter["source"] == {"topic": "orders", "partition": 0, "offset": 0}
    assert [s.topic for s in batch.sends] == ["dlq"]
    assert worker.state("cust-1") is None
    assert read_marker(worker.table.data[marker_key("orders", 0)])[0] == 1


def test_a_keyless_record_is_sent_again_keyed_and_not_applied(policy: Policy) -> None:
    worker = Worker(policy)
    body = order("e1", T0, 120.0)
    batch = worker.batch(worker.record(body, key=None))
    [again] = batch.sends
    assert (again.topic, again.key, again.value) == ("orders", b"cust-1", orjson.dumps(body))
    assert worker.state("cust-1") is None
    assert read_marker(worker.table.data[marker_key("orders", 0)])[0] == 1


def test_a_duplicate_is_applied_once(policy: Policy) -> None:
    worker = Worker(policy)
    first = order("e1", T0, 120.0)
    worker.batch(worker.record(first))
    # The same event again, at a later offset (a producer's retry), in another batch.
    batch = worker.batch(worker.record(first))
    assert batch.sends == []
    stored = worker.state("cust-1")
    assert stored is not None
    assert stored[1].seq == 1
    assert read_marker(worker.table.data[marker_key("orders", 0)])[0] == 2


def test_a_customer_changed_again_in_a_batch_is_sent_and_kept_as_the_batch_leaves_it(
    policy: Policy,
) -> None:
    """A customer's grade and table value are taken after its first change in a batch;
    a second change must replace both, once (customer-grades holds latest grades)."""
    worker = Worker(policy)
    batch = worker.batch(
        worker.record(order("e1", T0, 120.0)),
        worker.record(order("e2", T0 + DAY, 30.0, cid="c2")),
        worker.record(order("e3", T0 + 2 * DAY, 900.0)),
    )
    grades = sent(batch, "customer-grades")
    assert [g["customer_id"] for g in grades] == ["cust-1", "c2"]
    stored = worker.state("cust-1")
    assert stored is not None
    applied, state = stored
    assert (applied, state.seq) == ({"orders": 3}, 2)
    assert grades[0] == orjson.loads(orjson.dumps(snapshot(state, policy)))


def test_a_record_its_state_holds_already_is_skipped(policy: Policy) -> None:
    """Killed between persisting the states and the markers: the record is delivered
    again, below its customer's applied offset, and changes nothing."""
    worker = Worker(policy)
    record = worker.record(order("e1", T0, 120.0))
    worker.batch(record)
    del worker.table.data[marker_key("orders", 0)]
    batch = worker.batch(record)
    assert batch.sends == []
    assert batch.changed == {}


def test_a_tick_moves_a_quiet_customer(policy: Policy) -> None:
    worker = Worker(policy)
    worker.batch(worker.record(order("e1", T0, 120.0)))
    due = worker.step.clock.due(0).next_due()
    assert due is not None
    batch = worker.batch(ticks=(tick("cust-1", T0 + 40 * DAY),))
    [change] = sent(batch, "lifecycle-changes")
    assert (change["previous_stage"], change["stage"]) == ("new", "active")
    assert change["cause"]["kind"] == "inactivity"
    [grade] = sent(batch, "customer-grades")
    assert grade["lifecycle"] == "active"
    stored = worker.state("cust-1")
    assert stored is not None
    assert stored[1].as_of > T0
    # A tick for a customer with no state, and a tick with nothing due, change nothing.
    assert worker.batch(ticks=(tick("nobody", T0),)).sends == []
    assert sent(worker.batch(ticks=(tick("cust-1", stored[1].as_of),)), "customer-grades") == []


def test_a_new_policy_regrades_with_cause_policy_change(policy: Policy) -> None:
    worker = Worker(policy)
    first = worker.batch(worker.record(order("e1", T0, 60_000.0)))
    assert sent(first, "customer-grades")[0]["tier"] == "silver"  # spend >= 50,000
    doc = default_doc()
    doc["policy_version"] = "stricter-silver"
    for rung in doc["tiers"]["ladder"]:
        if rung["name"] == "silver":
            rung["min_spend"] = 70_000.0
    worker.step.policy = policy_from_dict(doc)
    batch = worker.batch(ticks=(tick("cust-1", T0 + DAY),))
    [change] = sent(batch, "tier-changes")
    assert (change["previous_tier"], change["tier"]) == ("silver", "regular")
    assert change["cause"]["kind"] == "policy_change"
    [grade] = sent(batch, "customer-grades")
    assert grade["policy_version"] == "stricter-silver"


def test_a_failing_record_is_a_dead_letter_and_leaves_the_state_as_before(
    policy: Policy,
) -> None:
    worker = Worker(policy)
    batch = Batch()
    worker.step.record(worker.record(order("e1", T0, 120.0)), batch)
    before = orjson.dumps(sent(batch, "lifecycle-changes"))
    tier = batch.states["cust-1"].tier

    # A bug: no topic for any output event. The large order changes the state and then
    # fails listing its tier change; the state must be rebuilt without it.
    worker.step.routes = Routes(ROUTES.carries, {}, ROUTES.grades, ROUTES.dead_letters)
    worker.step.record(worker.record(order("e2", T0 + DAY, 50_000.0)), batch)
    [letter] = sent(batch, "dlq")
    assert letter["rejection"]["code"] == "processing_error"
    assert "KeyError" in letter["rejection"]["message"]
    assert batch.states["cust-1"].seq == 1
    assert batch.states["cust-1"].tier == tier
    assert orjson.dumps(sent(batch, "lifecycle-changes")) == before


def replayed(policy: Policy, records: list[SimRecord]) -> tuple[list[Any], dict[str, Any]]:
    """Replay's output events and final grades for `records` (one partition)."""
    outputs: list[dict[str, Any]] = []
    replayer = Replayer(policy, outputs.append, lambda _: None)
    for line, (_, _, value) in enumerate(records, start=1):
        replayer.feed(line, value)
    return outputs, {g["customer_id"]: g for g in replayer.finish()}


async def drive(worker: Worker, records: list[SimRecord]) -> dict[str, list[dict[str, Any]]]:
    """Each record in a batch of its own, then a sweep's ticks in another, as a worker on
    one partition under the event clock: what was sent, by topic."""
    sends: dict[str, list[dict[str, Any]]] = {}
    for topic, key, value in records:
        worker.step.routes = Routes(
            {topic: (topic,)}, ROUTES.outputs, ROUTES.grades, ROUTES.dead_letters
        )
        batch = worker.batch(worker.record(value, key, topic))
        ticks: list[Record] = []

        async def send_tick(customer_id: str, partition: int, now: int) -> None:
            ticks.append(tick(customer_id, now))  # noqa: B023 (used before the loop moves on)

        await worker.step.clock.sweep(send_tick)
        tick_batch = worker.batch(ticks=tuple(ticks))
        for done in (batch, tick_batch):
            for send in done.sends:
                sends.setdefault(send.topic, []).append(orjson.loads(send.value))
    return sends


def latest(grades: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {g["customer_id"]: g for g in grades}


@pytest.mark.parametrize("cache_size", [0, 7, 1000])
async def test_under_the_event_clock_the_step_grades_as_replay(
    policy: Policy, cache_size: int
) -> None:
    """Advance to the partition's stream time, then apply; ticks for the customers the
    sweep finds due: the same output events and grades as replay over the same records.
    Over more than a year, so that tiers lapse and downgrade warnings come too. With no
    cache of decoded states, one smaller than the customers, and one holding them all."""
    records = [keyed(r) for r in generate(80, 420, seed=11, config=SimConfig(keys=False))]
    expected_outputs, expected_grades = replayed(policy, records)

    worker = Worker(policy, clock_kind="event", cache_size=cache_size)
    sends = await drive(worker, records)
    assert len(worker.step.store.cache) == min(cache_size, 80)
    outputs = [o for topic in ROUTES.outputs.values() for o in sends.get(topic, [])]
    assert any(o["cause"]["kind"] == "inactivity" for o in outputs)  # ticks did work
    assert any(o["type"] == "tier_warning" for o in outputs)
    assert {o["event_id"]: o for o in outputs} == {o["event_id"]: o for o in expected_outputs}
    assert latest(sends["customer-grades"]) == expected_grades


def silver_at_40k() -> Policy:
    doc = default_doc()
    doc["policy_version"] = "silver-40k"
    for rung in doc["tiers"]["ladder"]:
        if rung["name"] == "silver":
            rung["min_spend"] = 40_000.0
    return policy_from_dict(doc)


async def test_a_shadow_policy_grades_alongside_to_its_own_topic_only(policy: Policy) -> None:
    """The shadow's grades are replay's under the shadow policy; the live outputs and
    grades are as without a shadow; nothing else of the shadow's is sent."""
    records = [keyed(r) for r in generate(80, 420, seed=11, config=SimConfig(keys=False))]
    shadow = silver_at_40k()
    expected_outputs, expected_grades = replayed(policy, records)
    _, expected_shadow = replayed(shadow, records)

    worker = Worker(policy, clock_kind="event", shadow_policy=shadow)
    sends = await drive(worker, records)
    assert set(sends) <= {*ROUTES.outputs.values(), "customer-grades", "dlq", "shadow-grades"}
    outputs = [o for topic in ROUTES.outputs.values() for o in sends.get(topic, [])]
    assert {o["event_id"]: o for o in outputs} == {o["event_id"]: o for o in expected_outputs}
    assert latest(sends["customer-grades"]) == expected_grades
    shadow_grades = latest(sends["shadow-grades"])
    assert shadow_grades == expected_shadow
    assert {g["policy_version"] for g in shadow_grades.values()} == {"silver-40k"}
    # The lower silver threshold shows (in what silver needs, at least).
    assert any(g["progress"] != expected_grades[c]["progress"] for c, g in shadow_grades.items())

    # Shadow states are kept under keys of their own, never found as customers.
    some = sorted(shadow_grades)[0]
    assert (SHADOW_PREFIX + some.encode()) in worker.table.data
    assert worker.step.store.find(SHADOW_PREFIX.decode() + some, 0, None) is None


# -- events from the future: one rule live and in replay (issue 16) --------------------------


def _refused(policy: Policy, events: list[dict[str, Any]]) -> tuple[dict[str, str], ...]:
    """Each refused event's id and code: from the step under the event clock (one
    partition, a batch per record) and from replay, fed the same events."""

    def reasons(letters: list[dict[str, Any]]) -> dict[str, str]:
        ids = [orjson.loads(base64.b64decode(d["value_b64"]))["event_id"] for d in letters]
        return {i: d["rejection"]["code"] for i, d in zip(ids, letters, strict=True)}

    worker = Worker(policy, clock_kind="event")
    live: list[dict[str, Any]] = []
    for event in events:
        live += sent(worker.batch(worker.record(event)), "dlq")
    replayed: list[dict[str, Any]] = []
    replayer = Replayer(policy, lambda _: None, replayed.append)
    for line, event in enumerate(events, start=1):
        replayer.feed(line, orjson.dumps(event))
    return reasons(live), reasons(replayed)


def test_an_event_from_the_future_moves_no_clock(policy: Policy) -> None:
    """Issue 16: one event dated 2026-06-01 in a 2024 stream (after the wall clock's
    tomorrow or not) moved its partition's clock, and the worker then refused the
    partition's later events as too_late; replay had no such check at all."""
    events = [order(f"e{n}", T0 + n * 6 * 3600, 20.0, cid=f"cust-{n % 4}") for n in range(40)]
    events.insert(8, order("far", 1_780_272_000, 20.0, cid="cust-2"))  # 2026-06-01
    events.insert(20, order("y9999", 253_402_300_799, 20.0, cid="cust-3"))
    live, replayed = _refused(policy, events)
    assert live == replayed == {"far": "from_the_future", "y9999": "from_the_future"}


def test_time_that_really_jumped_costs_one_event(policy: Policy) -> None:
    """A partition quiet for longer than the policy's bound (30 days): its next event is
    refused, and the one after, which agrees with it, moves the clock (so a gap never
    stops a partition). A quiet spell within the bound costs nothing."""
    assert policy.events.ahead_of_stream_days == 30
    hour = 3600
    events = [order("e1", T0, 20.0), order("e2", T0 + hour, 20.0, cid="cust-2")]
    events += [order("e3", T0 + 25 * DAY, 20.0), order("e4", T0 + 25 * DAY + hour, 20.0)]
    events += [
        order(f"e{n}", T0 + 60 * DAY + n * hour, 20.0, cid=f"cust-{n % 3}") for n in range(5, 9)
    ]
    live, replayed = _refused(policy, events)
    assert live == replayed == {"e5": "from_the_future"}


class CountingTable:
    """A dict table that counts its reads (a wrapper: the compiled DictTable cannot be
    subclassed here)."""

    def __init__(self) -> None:
        self.inner = DictTable()
        self.data = self.inner.data
        self.reads = 0

    def get(self, key: bytes, partition: int | None) -> bytes | None:
        self.reads += 1
        return self.inner.get(key, partition)

    def put(self, key: bytes, value: bytes, partition: int) -> None:
        self.inner.put(key, value, partition)

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        return self.inner.items()


def test_a_persisted_state_is_kept_decoded_as_the_table_holds_it(policy: Policy) -> None:
    table = CountingTable()
    worker = Worker(policy, table=table, cache_size=10)
    worker.batch(worker.record(order("e1", T0, 120.0)))
    applied, cached = worker.step.store.cache["cust-1"]
    assert (applied, encode_state(cached)) == _stored(worker, "cust-1")
    reads = table.reads
    batch = worker.batch(worker.record(order("e2", T0 + DAY, 10.0)))
    assert table.reads == reads  # no state read from the table
    assert batch.states["cust-1"] is cached
    assert _stored(worker, "cust-1")[0] == {"orders": 2}


def test_a_batch_that_fails_leaves_its_customers_to_the_table(policy: Policy) -> None:
    """Taken from the cache and changed, never persisted (its sends failed): the next
    batch reads the state the table holds, not the changed one."""
    worker = Worker(policy, cache_size=10)
    worker.batch(worker.record(order("e1", T0, 120.0)))
    failed = worker.step.store.batch()
    worker.step.record(worker.record(order("e2", T0 + DAY, 10.0)), failed)
    assert "cust-1" not in worker.step.store.cache
    again = worker.step.store.batch()
    state = worker.step.store.load("cust-1", 0, again)
    assert state is not failed.states["cust-1"]
    assert encode_state(state) == _stored(worker, "cust-1")[1]


def test_a_batch_begun_before_partitions_moved_gives_nothing_back(policy: Policy) -> None:
    worker = Worker(policy, cache_size=10)
    batch = worker.step.store.batch()
    worker.step.record(worker.record(order("e1", T0, 120.0)), batch)
    worker.step.store.forget()
    worker.step.finish(batch)
    worker.step.persist(batch)
    assert worker.step.store.cache == {}
    assert _stored(worker, "cust-1")[0] == {"orders": 1}


def _stored(worker: Worker, customer_id: str) -> tuple[dict[str, int], bytes]:
    return unframe(worker.table.data[customer_id.encode()])
