"""The Faust worker: a thin shell that moves events between topics, the table and the core.

Per input record: decode and validate (`streams.contracts`), apply to the customer's
state (`streams.core.engine`), store the state, publish the output events and the new
grade. Bad records go to the dead-letter topic with their bytes, source and reason.

Time: a timer finds the customers whose due time has come in this worker's partitions
and sends each a keyed tick; the agent that owns the customer applies it, so every
state change happens inside stream iteration, where Faust keeps the RocksDB store and
the changelog together (a timer writing a table directly would not).

Redis: a separate agent reads customer-grades and writes the view, so a Redis outage
holds back only that agent. The view keeps its own positions in Redis, written with the
snapshots, and the agent reads on from them, not from faust's committed offsets.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import weakref
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import faust
import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from aiokafka.structs import TopicPartition
from faust.types import Message
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest

from streams.app import metrics
from streams.contracts import dead_letter, decode
from streams.core import engine
from streams.core.errors import Rejection
from streams.core.policy import Policy
from streams.core.state import CustomerState
from streams.core.state import decode as decode_state
from streams.core.state import encode as encode_state
from streams.schedule import DueIndex, partition_of
from streams.settings import Settings
from streams.sinks.redis_view import RedisView

log = logging.getLogger(__name__)

JSON = orjson.OPT_SORT_KEYS
# Table keys of the per-input-partition progress markers (no customer id starts with a
# control character: the schemas forbid them).
MARKER_PREFIX = "\x00done:"
# An input partition read past its marker with nothing handled for this long is sought back.
STALL_SECONDS = 5.0
STALL_TRIES = 3
# An event dated further ahead of the wall clock than this is refused (from_the_future).
MAX_AHEAD_SECONDS = 24 * 3600
# How old the Kafka clients' cluster metadata may get. Kafka's default, 5 min, is how long
# a broker-restart trial waited to catch up once; a refresh is one small request.
METADATA_MAX_AGE_MS = 10_000


def faust_credentials(settings: Settings) -> dict[str, Any]:
    """Faust's broker_credentials / ssl_context from the settings (secrets stay inside)."""
    ssl_context = settings.kafka_ssl_context()
    if settings.kafka_security_protocol.startswith("SASL"):
        password = settings.kafka_sasl_password
        return {
            "broker_credentials": faust.SASLCredentials(
                username=settings.kafka_sasl_username,
                password=password.get_secret_value() if password else None,
                mechanism=settings.kafka_sasl_mechanism,
                ssl_context=ssl_context,
            )
        }
    if ssl_context is not None:
        return {"broker_credentials": ssl_context}
    return {}


def track_topics(producer: AIOKafkaProducer, names: Iterable[str]) -> None:
    """Make the producer's client track these topics by name, before it sends to them.

    aiokafka's client asks the broker for the metadata of the topics it tracks, or of all
    topics while it tracks none, and each answer replaces what it knew. A send adds its
    topic to the tracked ones only if the metadata does not know it yet. So a topic
    learned from an all-topics answer (faust asks for one after each topic it declares)
    is never tracked; the first send to a topic created later makes the client track that
    one alone, the next answer forgets the first, and a batch for the first waits for a
    leader until it expires (faust: 20 min) while the commit awaits it: the worker stalls
    (docs/reliability.md, "The producer that forgot a topic"). With every topic tracked
    before the first send, no answer forgets one.
    """
    for name in names:
        producer.client.add_topic(name)


def redis_client(settings: Settings) -> aioredis.Redis:
    options: dict[str, Any] = {}
    if settings.redis_password is not None:
        options["password"] = settings.redis_password.get_secret_value()
    if settings.redis_tls_ca_file is not None:
        options["ssl_ca_certs"] = str(settings.redis_tls_ca_file)
    return aioredis.from_url(settings.redis_url.get_secret_value(), **options)


Step = tuple[int | None, dict[str, Any] | None, int | None]


@dataclass
class Batch:
    """What one batch of records did, published and persisted together (`_commit`).

    States are loaded from the table once per batch and kept here while it runs (a
    customer with several records in a batch is decoded and encoded once); `changed`
    holds the customers to persist, with their partition and whether their grade moved.
    `steps` are what each customer went through (advance to now, apply an event), to
    rebuild a state that a failing record left half-changed.
    """

    states: dict[str, CustomerState] = field(default_factory=dict)
    # Per customer with a state: per input topic, the offset after the last record applied
    # to it (stored with the state, see `frame`).
    applied: dict[str, dict[str, int]] = field(default_factory=dict)
    changed: dict[str, tuple[int, bool]] = field(default_factory=dict)
    steps: defaultdict[str, list[Step]] = field(default_factory=lambda: defaultdict(list))
    acks: list[Awaitable[Any]] = field(default_factory=list)
    # The progress markers to write, with their partitions; a record of each partition.
    markers: dict[bytes, tuple[int, bytes]] = field(default_factory=dict)
    records: dict[int, faust.EventT[bytes]] = field(default_factory=dict)
    produced_at: list[float] = field(default_factory=list)


@contextmanager
def _processing(record: faust.EventT[bytes]) -> Iterator[None]:
    """Make `record` the one being processed, for faust's table and its RocksDB store:
    they take the partition of a read or write from it, and take_events does not set
    it (faust-streaming issue 497)."""
    token = faust.streams._current_event.set(weakref.ref(record))
    try:
        yield
    finally:
        faust.streams._current_event.reset(token)


def _keys(events: Iterable[faust.EventT[bytes]]) -> set[str]:
    """The customer ids a batch may touch (its records' keys; keyless ones touch none)."""
    return {e.message.key.decode(errors="replace") for e in events if e.message.key}


class GradingWorker:
    """The Faust app, its topics, table and agents, built from settings and a policy."""

    def __init__(self, settings: Settings, policy: Policy) -> None:
        self.settings = settings
        self.policy = policy
        # Due customers and stream time (highest event time read: "now" under the event
        # clock) per partition number; a customer's records, state and ticks share one.
        self.dues: dict[int, DueIndex] = {}
        self.partition_time: dict[int, int] = {}
        # Ready once the first assignment has been recovered and indexed (the /health probe);
        # moving from a rebalance's start until its partitions are recovered and indexed.
        self.ready = False
        self.moving = True
        # One customer's load-grade-publish-persist at a time (input and tick agents).
        self.locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.lock_users: defaultdict[str, int] = defaultdict(int)
        # Per marker key (an input partition): the next offset to handle (a cache of the
        # table's marker), and the offset read ahead of it when we sought back to it.
        self.done: dict[bytes, int] = {}
        self.rewound: dict[bytes, int] = {}
        # Per marker key: when a record was last handled there (or last sought back), and
        # the (marker, position) the watch last sought back from, with how many times.
        self.moved_at: dict[bytes, float] = {}
        self.stalled: dict[bytes, tuple[tuple[int, int], int]] = {}
        # Per input topic: when its agent last took a record (of any partition).
        self.read_at: dict[str, float] = {}
        # The topics whose agent is in the middle of a batch (handling or committing it).
        self.in_batch: set[str] = set()
        # Per input (topic, partition): the latest event time read there. A marker keeps
        # its own topic's, not the partition's stream time: that one also holds the times
        # of other topics' records still in a batch, which a crash may undo.
        self.read_times: dict[tuple[str, int], int] = {}
        # While the view agent waits for Redis (an outage), its partitions are not stalled.
        self.writing_view = False
        self.app = app = faust.App(
            settings.app_id,
            broker=f"kafka://{settings.kafka_bootstrap_servers}",
            store="rocksdb://",
            datadir=str(settings.datadir),
            web_host=settings.web_host,
            web_port=settings.web_port,
            topic_partitions=settings.partitions,
            key_serializer="raw",
            value_serializer="raw",
            # At-least-once: exactly_once has open fencing bugs in faust; every effect
            # here is idempotent instead (deterministic output ids, newest-wins Redis).
            processing_guarantee="at_least_once",
            consumer_auto_offset_reset="earliest",
            # A worker killed without leaving the group holds its partitions until the
            # session times out: faust's default of 60 s is a minute of no grading after
            # every crash. Kafka's own default heartbeat/session pair instead (the
            # heartbeat runs in the consumer thread, so slow processing does not miss it).
            broker_session_timeout=10.0,
            broker_heartbeat_interval=3.0,
            # Records sent within the linger go to the broker in one request: per-record
            # requests cost more CPU than the grading (docs/benchmarks.md, "Worker").
            producer_linger=settings.producer_linger_seconds,
            producer_metadata_max_age_ms=METADATA_MAX_AGE_MS,
            consumer_metadata_max_age_ms=METADATA_MAX_AGE_MS,
            **faust_credentials(settings),
        )
        p = settings.partitions

        def internal(name: str, **extra: Any) -> faust.TopicT:
            return app.topic(name, internal=True, partitions=p, **extra)

        # Input Kafka topics, each with the product topics (kinds of events) it carries.
        # Usually one each; a deployment may send all events to one topic, which keeps a
        # customer's events in one partition, in the order they were produced.
        carried: dict[str, list[str]] = {}
        for kind, name in (
            ("orders", settings.topic_orders),
            ("complaints", settings.topic_complaints),
            ("interactions", settings.topic_interactions),
        ):
            carried.setdefault(name, []).append(kind)
        self.inputs = {name: app.topic(name, partitions=p) for name in carried}
        self.carries = {name: tuple(kinds) for name, kinds in carried.items()}
        self.outputs = {
            "tier_changed": internal(settings.topic_tier_changes),
            "churn_risk_changed": internal(settings.topic_churn_risk),
            "lifecycle_changed": internal(settings.topic_lifecycle_changes),
        }
        self.grades = internal(settings.topic_customer_grades, compacting=True)
        self.dead_letters = internal(settings.topic_dead_letters)
        self.ticks = internal(settings.topic_ticks)
        # States as compact bytes (core.state.encode), keyed by customer_id bytes. The
        # changelog Faust keeps for it is compacted, never time-retained.
        self.customers = app.Table("customers", partitions=p, key_type=bytes, value_type=bytes)
        self.view = RedisView(redis_client(settings), settings.redis_key_prefix)
        self._register()

    # -- agents ---------------------------------------------------------------------------

    def _register(self) -> None:
        app = self.app
        for topic_name, topic in self.inputs.items():
            agent = self._batch_agent(
                topic_name,
                functools.partial(self._on_record, topic_name),
                metrics.EVENTS_IN.labels(topic_name),
            )
            app.agent(topic, name=f"grade-{'-'.join(self.carries[topic_name])}", concurrency=1)(
                agent
            )
        ticks = self._batch_agent(self.ticks.get_topic_name(), self._on_tick, metrics.TICKS_IN)
        app.agent(self.ticks, name="ticks", concurrency=1)(ticks)
        app.agent(self.grades, name="redis-view", concurrency=1)(self._view_agent)
        app.timer(self.settings.sweep_interval_seconds)(_logged(self._sweep))
        app.timer(5.0)(_logged(self._measure_lag))
        app.timer(STALL_SECONDS / 2)(_logged(self._watch_progress))
        app.on_partitions_revoked.connect(self._on_moving)
        app.on_rebalance_complete.connect(self._rebuild_due_index)
        self._register_web()

    def _batch_agent(
        self,
        topic_name: str,
        handle: Callable[[faust.EventT[bytes], Batch], Awaitable[None]],
        counter: Counter,
    ) -> Callable[[faust.StreamT[bytes]], AsyncIterator[None]]:
        """An agent that hands each record of a batch of `topic_name` to `handle`, then
        commits the batch, holding the locks of the batch's customers throughout."""
        settings = self.settings

        async def agent(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
            # take_events is on faust.Stream, not (yet) on the StreamT interface.
            batches = cast(faust.Stream[bytes], stream).take_events(
                settings.batch_size, within=settings.batch_wait_seconds
            )
            async for events in batches:
                counter.inc(len(events))
                metrics.BATCH_RECORDS.observe(len(events))
                batch = Batch()
                self.in_batch.add(topic_name)
                try:
                    async with self._locked(_keys(events)):
                        for event in events:
                            batch.records[event.message.partition] = event
                            with _processing(event):
                                await handle(event, batch)
                        await self._commit(batch)
                finally:
                    # The watch counts a stall from here, not from the batch's start.
                    self.in_batch.discard(topic_name)
                    self.read_at[topic_name] = time.monotonic()
                yield None

        return agent

    async def _on_record(self, topic_name: str, event: faust.EventT[bytes], batch: Batch) -> None:
        """Handle each input record once and in offset order, whatever Kafka delivers.

        The table keeps, per input partition and in the same changelog as the states,
        the next offset to handle and the latest event time read there (the marker);
        the event clock resumes at the latest of a partition number's markers.
        - A record below it was handled before (re-delivered after a crash, from a commit
          that lagged): skipped. The event clock resumes at the marker's time, so that
          the records after it meet the clock they would have met without the crash.
        - A record above it means records in between were never handled: faust drops
          the rest of a fetched batch when a rebalance cuts in, then reads on from where
          the fetch had got to (and may commit past the dropped records). We seek back
          to the marker and skip what had been read past the first record read ahead.
          When a record up to that one is next after the seek, nothing lay before it
          (a transaction marker, compaction, retention) and we go on from there.
        """
        message = event.message
        self.read_at[message.topic] = time.monotonic()
        marker = marker_key(message.topic, message.partition)
        if not await self._in_order(message, marker, self._done(marker)):
            return
        await self._handle(topic_name, event, batch)
        self.done[marker] = message.offset + 1
        self.moved_at[marker] = time.monotonic()
        clock = self.read_times.get((message.topic, message.partition), 0)
        batch.markers[marker] = (message.partition, orjson.dumps([message.offset + 1, clock]))

    async def _in_order(self, message: Message, marker: bytes, done: int | None) -> bool:
        """Whether `message` is the next to handle of its partition, whose next offset to
        handle is `done` (None: not known, any is next); seeks back over a gap."""
        offset = message.offset
        if done is not None and offset != done:
            if offset < done:
                metrics.REDELIVERED.inc()
                return False
            ahead = self.rewound.get(marker)
            if ahead is None:
                await self._rewind(marker, message.tp, done, offset)
                return False
            if offset > ahead:
                return False  # read ahead before the seek took effect; it comes again
            log.info("%s: no records in [%d, %d), going on", message.tp, done, offset)
        self.rewound.pop(marker, None)
        return True

    def _done(self, marker: bytes) -> int | None:
        done = self.done.get(marker)
        if done is None:
            stored = self.customers.get(marker)
            if stored is not None:
                done = self.done[marker] = orjson.loads(stored)[0]
        return done

    async def _rewind(self, marker: bytes, tp: TopicPartition, done: int, ahead: int) -> None:
        metrics.REWINDS.inc()
        log.warning("%s: read at %d, next to handle is %d: seeking back", tp, ahead, done)
        self.rewound[marker] = ahead
        self.moved_at[marker] = time.monotonic()
        # seek_wait seeks from faust's consumer thread, which owns the aiokafka consumer
        # (Consumer.seek calls it from this one; after it the partition stalled once).
        await self.app.consumer.seek_wait({tp: done})

    async def _handle(self, topic_name: str, event: faust.EventT[bytes], batch: Batch) -> None:
        message = event.message
        value: bytes = message.value or b""
        key: bytes | None = message.key
        source = {"topic": message.topic, "partition": message.partition, "offset": message.offset}
        stepped = ""  # the customer whose state this record has begun to change
        try:
            kinds = self.carries[topic_name]
            decoded = decode(value, kinds[0] if len(kinds) == 1 else None, key)
            if not isinstance(decoded, Rejection) and decoded.topic not in kinds:
                decoded = Rejection(
                    "wrong_topic",
                    f"/type: {decoded.event['type']!r} does not belong on {topic_name!r}",
                )
            if isinstance(decoded, Rejection):
                await self._dead_letter(value, key, source, decoded, batch)
                return
            if decoded.rekeyed:
                # Keyless: send it again keyed by customer_id, so that it lands on the
                # partition (and worker) that owns the customer's state.
                sent = await self._send(self.inputs[topic_name], decoded.key.encode(), value)
                batch.acks.append(sent)  # acknowledged before the batch counts as handled
                return
            customer_id = decoded.key
            event_time = engine.event_time(decoded.event)
            if event_time > time.time() + MAX_AHEAD_SECONDS:
                # One such event would move its customer (and, under the event clock, its
                # whole partition) to that time: every later event would come too late.
                ahead = Rejection(
                    "from_the_future",
                    f"/occurred_at: {decoded.event['occurred_at']} is more than "
                    f"{MAX_AHEAD_SECONDS // 3600} h ahead of this worker's clock",
                )
                await self._dead_letter(value, key, source, ahead, batch)
                return
            now = self._read_time(message.partition, event_time)
            read = (message.topic, message.partition)
            self.read_times[read] = max(self.read_times.get(read, event_time), event_time)
            state = self._load(customer_id, batch)
            applied = batch.applied.setdefault(customer_id, {})
            if message.offset < applied.get(message.topic, 0):
                # Applied already and its state kept, though the partition's marker was
                # not: a kill between the two writes (_commit). Applied again, an event
                # the state has forgotten by now (older than its lateness floor) would
                # be refused as too_late instead of recognised as a duplicate.
                metrics.REDELIVERED.inc()
                return
            applied[message.topic] = message.offset + 1
            before = engine.revision(state)
            batch.steps[customer_id].append((now, decoded.event, event_time))
            stepped = customer_id
            # Under the event clock, first let time pass for this customer to its
            # partition's stream time, as replay's sweep has done by then: the outcome
            # must not depend on whether the asynchronous tick came first.
            outputs = engine.advance(state, now, self.policy) if now is not None else []
            result = engine.apply(state, decoded.event, self.policy, at=event_time)
            outputs += result.outputs
            if engine.revision(state) != before:
                await self._publish(state, outputs, message.partition, batch)
            if result.rejection is not None:
                await self._dead_letter(value, key, source, result.rejection, batch)
                return
            if result.duplicate:
                metrics.DUPLICATES.inc()
                return
            batch.produced_at.append(message.timestamp)
        except Exception as exc:  # a bug must not stop the worker nor lose the record
            log.exception(
                "processing %s[%s]@%s failed", message.topic, message.partition, message.offset
            )
            if stepped:
                self._undo(stepped, batch)
            reason = Rejection("processing_error", f"{type(exc).__name__}: {exc}"[:300])
            await self._dead_letter(value, key, source, reason, batch)

    def _undo(self, customer_id: str, batch: Batch) -> None:
        """Rebuild a customer's state as it was before the record that failed: from the
        table (as before the batch) and the steps of the batch that went through; the
        failed one may have left the state half-changed. Their outputs are sent already."""
        steps = batch.steps[customer_id]
        steps.pop()  # the failed record's
        state = batch.states[customer_id] = self._load(customer_id, None)
        for now, event, at in steps:
            if now is not None:
                engine.advance(state, now, self.policy)
            if event is not None:
                engine.apply(state, event, self.policy, at=at)

    async def _on_tick(self, event: faust.EventT[bytes], batch: Batch) -> None:
        message = event.message
        customer_id = (message.key or b"").decode(errors="replace")
        stepped = False
        try:
            now = int(message.value or b"0")
            state = self._find(customer_id, batch)
            if state is None:
                return
            before, due = engine.revision(state), state.due
            batch.steps[customer_id].append((now, None, None))
            stepped = True
            outputs = engine.advance(state, now, self.policy)
            if engine.revision(state) != before:
                await self._publish(state, outputs, message.partition, batch)
            elif state.due != due:  # a wake-up for nothing: only the due moved
                batch.changed.setdefault(customer_id, (message.partition, False))
        except Exception:  # a tick is re-sent by the next sweep; the worker goes on
            log.exception("tick %s[%s]@%s failed", message.topic, message.partition, message.offset)
            if stepped:
                self._undo(customer_id, batch)

    async def _view_agent(self, stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        """Write the grades to Redis, in offset order per partition from the view's own
        positions (kept in Redis with the snapshots): a snapshot that faust skipped
        around a rebalance is read again (`_in_order`), and a Redis that lost its data
        (no positions) is rebuilt from the start of the compacted topic."""
        # take_events, not take: the offsets are needed. One Redis pipeline per batch.
        batches = cast(faust.Stream[bytes], stream).take_events(500, within=0.2)
        async for events in batches:
            grades: list[dict[str, Any]] = []
            reached: dict[str, int] = {}
            for event in events:
                message = event.message
                self.read_at[message.topic] = time.monotonic()
                marker = marker_key(message.topic, message.partition)
                # Per record: a rebalance completing during an await here clears them.
                await self._view_positions([message.partition])
                if await self._in_order(message, marker, self.done[marker]):
                    grades.append(orjson.loads(message.value or b"null"))
                    self.done[marker] = message.offset + 1
                    self.moved_at[marker] = time.monotonic()
                    reached[f"{message.topic}:{message.partition}"] = message.offset + 1
            self.writing_view = True  # a write waiting for Redis is no stall (_watch_progress)
            try:
                written = await self.view.write(grades, reached)
            finally:
                self.writing_view = False
            self.read_at[self.grades.get_topic_name()] = time.monotonic()
            metrics.REDIS_WRITES.inc(written)
            yield None

    async def _view_positions(self, partitions: Iterable[int]) -> None:
        """Load the view's positions of these customer-grades partitions from Redis, if
        not known yet (none stored: from the start)."""
        topic = self.grades.get_topic_name()
        missing = {p for p in partitions if marker_key(topic, p) not in self.done}
        if not missing:
            return
        stored = await self.view.positions()
        for partition in missing:
            self.done[marker_key(topic, partition)] = stored.get(f"{topic}:{partition}", 0)

    # -- state ----------------------------------------------------------------------------

    def _find(self, customer_id: str, batch: Batch | None) -> CustomerState | None:
        """The customer's state as of the batch (None: no state), or as of the table."""
        if batch is not None and customer_id in batch.states:
            return batch.states[customer_id]
        if customer_id.startswith(MARKER_PREFIX):
            return None
        raw = self.customers.get(customer_id.encode())
        if raw is None:
            return None
        applied, encoded = unframe(raw)
        state = decode_state(encoded)
        if batch is not None:
            batch.states[customer_id] = state
            batch.applied[customer_id] = applied
        return state

    def _load(self, customer_id: str, batch: Batch | None) -> CustomerState:
        state = self._find(customer_id, batch)
        if state is None:
            state = engine.new_state(customer_id)
            if batch is not None:
                batch.states[customer_id] = state
        return state

    def _due(self, partition: int) -> DueIndex:
        index = self.dues.get(partition)
        if index is None:
            index = self.dues[partition] = DueIndex()
        return index

    @asynccontextmanager
    async def _locked(self, customer_ids: Iterable[str]) -> AsyncIterator[None]:
        """Hold the locks of a batch's customers until it is committed: _commit awaits
        the broker, and another agent must not load a state meanwhile and persist an
        older one over it. Taken in sorted order, so two agents whose batches share
        customers never each hold a lock the other waits for."""
        ids = sorted(set(customer_ids))
        for customer_id in ids:
            self.lock_users[customer_id] += 1
        taken: list[asyncio.Lock] = []
        try:
            for customer_id in ids:
                lock = self.locks[customer_id]
                await lock.acquire()
                taken.append(lock)
            yield
        finally:
            for lock in taken:
                lock.release()
            for customer_id in ids:
                self.lock_users[customer_id] -= 1
                if not self.lock_users[customer_id]:
                    del self.locks[customer_id], self.lock_users[customer_id]

    async def _publish(
        self, state: CustomerState, outputs: list[dict[str, Any]], partition: int, batch: Batch
    ) -> None:
        """Send a changed customer's output events now; its grade and state at commit."""
        key = state.customer_id.encode()
        for output in outputs:
            kind = output["type"]
            metrics.OUTPUTS.labels(kind).inc()
            sent = await self._send(self.outputs[kind], key, orjson.dumps(output, option=JSON))
            batch.acks.append(sent)
        batch.changed[state.customer_id] = (partition, True)

    async def _send(
        self, topic: faust.TopicT, key: bytes | None, value: bytes, partition: int | None = None
    ) -> Awaitable[Any]:
        """Hand a record to faust's producer; the future it returns resolves once the
        broker has acknowledged the record. Not Topic.send: its per-record machinery
        (FutureMessage, callbacks, sensors) cost about 240 µs of CPU per record here,
        against 40 µs for the producer's send (docs/benchmarks.md, "Worker")."""
        return await self.app.producer.send(
            topic.get_topic_name(), key, value, partition, None, None
        )

    async def _commit(self, batch: Batch) -> None:
        """Publish the batch's grades, await every acknowledgement, then persist.

        In that order: RocksDB keeps the states and markers through a SIGKILL, while
        records still in the producer's buffer die with the process. A state persisted
        first would make the re-delivered event a duplicate that publishes nothing, and
        its output events would be lost for good. Published first, a crash before the
        persist at worst publishes the same records again (their ids are deterministic).
        A customer's grade is sent once per batch, its latest: customer-grades is a
        compacted topic of latest grades (Kafka Streams' record cache coalesces the same
        way). Callers hold the batch's customers' locks.
        """
        policy = self.policy
        for customer_id, (_, graded) in batch.changed.items():
            if graded:
                grade = engine.snapshot(batch.states[customer_id], policy)
                value = orjson.dumps(grade, option=JSON)
                batch.acks.append(await self._send(self.grades, customer_id.encode(), value))
        await asyncio.gather(*batch.acks)
        # The states before the markers: a kill in between then leaves records that
        # are handled again (their events are duplicates), never a record counted as
        # handled whose state was not kept.
        for customer_id, (partition, _) in batch.changed.items():
            state = batch.states[customer_id]
            with _processing(batch.records[partition]):
                applied = batch.applied.get(customer_id, {})
                self.customers[customer_id.encode()] = frame(applied, encode_state(state))
            self._due(partition).set(customer_id, state.due)
        for marker, (partition, value) in batch.markers.items():
            with _processing(batch.records[partition]):
                self.customers[marker] = value
        now = time.time()
        for produced_at in batch.produced_at:
            metrics.PROCESSING_SECONDS.observe(max(0.0, now - produced_at))

    async def _dead_letter(
        self,
        value: bytes,
        key: bytes | None,
        source: dict[str, Any],
        rejection: Rejection,
        batch: Batch,
    ) -> None:
        metrics.DEAD_LETTERS.labels(rejection.code).inc()
        # DEBUG: a flood of bad records must not become a flood of log lines (the
        # counter above, by reason, is what to watch).
        log.debug(
            "dead letter %s[%s]@%s: %s",
            source["topic"],
            source["partition"],
            source["offset"],
            rejection.code,
        )
        record = dead_letter(value, key, source, rejection)
        sent = await self._send(self.dead_letters, key, orjson.dumps(record, option=JSON))
        batch.acks.append(sent)  # acknowledged before the batch counts as handled

    # -- time -----------------------------------------------------------------------------

    def _read_time(self, partition: int, event_time: int) -> int | None:
        """Note an event time read from `partition`; return the partition's stream time
        (the event clock's "now" there), or None under the wall clock."""
        now = max(self.partition_time.get(partition, event_time), event_time)
        self.partition_time[partition] = now
        return now if self.settings.clock == "event" else None

    def now(self, partition: int) -> int | None:
        """Now for the customers of `partition`: wall-clock time, or under the event
        clock the partition's stream time (Kafka orders a partition, not the topic, so
        a partition read ahead must not move the others' customers; replay --partitions
        keeps the same time)."""
        if self.settings.clock == "event":
            return self.partition_time.get(partition)
        return int(time.time())

    async def _sweep(self) -> None:
        started = time.perf_counter()
        swept = 0
        for partition, index in list(self.dues.items()):
            now = self.now(partition)
            if now is None:
                continue
            for customer_id in index.pop_due(now):
                try:
                    await self._send(self.ticks, customer_id.encode(), str(now).encode(), partition)
                except Exception:
                    index.set(customer_id, now)  # the next sweep tries again
                    raise
                swept += 1
        metrics.SWEEP_CUSTOMERS.observe(swept)
        metrics.SWEEP_SECONDS.observe(time.perf_counter() - started)
        metrics.DUE_CUSTOMERS.set(sum(len(index) for index in self.dues.values()))

    def _track_written_topics(self) -> None:
        """Every rebalance, before streams resume: faust may have started a new producer."""
        written = (*self.outputs.values(), self.dead_letters, self.grades, self.ticks)
        # The inputs too: a keyless record is sent to its input topic again, keyed.
        names = [*self.inputs, self.customers.changelog_topic.get_topic_name()]
        producer = cast(Any, self.app.producer)._ensure_producer()
        track_topics(producer, names + [topic.get_topic_name() for topic in written])

    async def _on_moving(self, *_: Any, **__: Any) -> None:
        self.moving = True

    async def _rebuild_due_index(self, *_: Any, **__: Any) -> None:
        """After a rebalance, index the due times of the customers this worker now owns."""
        started = time.perf_counter()
        # Faust creates only the internal topics an agent reads. Those the worker only
        # writes must exist before its first send: in the benchmark, sends to a topic the
        # broker was still auto-creating stalled the producer. Before streams resume; once.
        written = (*self.outputs.values(), self.dead_letters)
        await asyncio.gather(*(topic.maybe_declare() for topic in written))
        self._track_written_topics()
        partitions = self.settings.partitions
        self.dues, self.done, self.rewound, self.moved_at = {}, {}, {}, {}
        self.stalled = {}
        graded_at: dict[int, int] = {}
        resume_at: dict[int, int] = {}
        for key, value in self.customers.items():
            if key.startswith(MARKER_PREFIX.encode()):
                topic, number = key[len(MARKER_PREFIX) :].decode().rsplit(":", 1)
                partition = int(number)
                next_offset, clock = orjson.loads(value)
                self.done[key] = next_offset
                resume_at[partition] = max(resume_at.get(partition, 0), clock)
                self.read_times[(topic, partition)] = clock
                continue
            state = decode_state(unframe(value)[1])
            partition = partition_of(state.customer_id, partitions)
            self._due(partition).set(state.customer_id, state.due)
            graded_at[partition] = max(graded_at.get(partition, 0), state.as_of)
        if self.settings.clock == "event":
            # The event clock resumes where handling stopped (see _on_record); for a table
            # without markers, at the latest time a customer of the partition was graded.
            for partition, clock in (graded_at | resume_at).items():
                self.partition_time[partition] = max(self.partition_time.get(partition, 0), clock)
        self.ready = True
        self.moving = False
        count = sum(len(index) for index in self.dues.values())
        log.info("due index: %d customers in %.2fs", count, time.perf_counter() - started)

    async def _watch_progress(self) -> None:
        """Seek back an input partition that is read past its marker but handles nothing,
        and a customer-grades partition read past the view's position.

        _on_record and the view agent seek back when a record above the marker (position)
        arrives; this catches what they cannot: a partition committed past unhandled
        records with no later record to show the gap, and a seek undone by faust's own
        seek to the committed offsets when it lands during a rebalance. Only while the
        topic's agent takes no records at all: a backlogged agent leaves a partition
        unhandled for long while its records wait in the agent's buffer (the benchmark
        saw needless seeks back at 1k events/s). Never while it is in a batch: records
        read past the marker may then be waiting for it, and going on past them would
        skip them (a CI run saw a batch wait for a forgotten topic, see track_topics).
        Seeking again is harmless: what is read twice is skipped. A partition sought
        back from the same place to the same marker STALL_TRIES times with nothing
        handled has no records there (only transaction markers, or compacted away): go
        on from there.
        """
        consumer = self.app.consumer
        now = time.monotonic()
        grades = self.grades.get_topic_name()
        for tp in consumer.assignment():
            marker = marker_key(tp.topic, tp.partition)
            if tp.topic in self.in_batch:
                continue  # not stalled, busy: a batch awaiting the broker, say
            if tp.topic in self.inputs:
                done = self._done(marker)
            elif tp.topic == grades and not self.writing_view:
                try:  # one try: a Redis outage must not hold up the inputs' watch
                    await asyncio.wait_for(self._view_positions([tp.partition]), 1.0)
                except Exception as error:
                    log.debug("view positions not read (%s); watching them later", error)
                    continue
                done = self.done[marker]
            else:
                continue
            moved_at = self.moved_at.setdefault(marker, now)
            read_at = self.read_at.get(tp.topic, moved_at)
            if done is None or now - max(moved_at, read_at) < STALL_SECONDS:
                continue
            position = await consumer.position(tp)
            if position is None or position <= done:
                continue
            place, tries = self.stalled.get(marker, ((done, position), 0))
            tries = tries + 1 if place == (done, position) else 1
            if tries > STALL_TRIES:
                log.warning("%s: no records in [%d, %d), going on", tp, done, position)
                self.done[marker] = position
                self.rewound.pop(marker, None)
                self.stalled.pop(marker)
                continue
            self.stalled[marker] = ((done, position), tries)
            await self._rewind(marker, tp, done, position)

    async def _measure_lag(self) -> None:
        # During a rebalance a partition can be assigned with no position or highwater yet.
        consumer = self.app.consumer
        assigned: set[TopicPartition] = consumer.assignment()
        lag: dict[str, int] = {}
        for tp in assigned:
            position = await consumer.position(tp)
            highwater = consumer.highwater(tp)
            if position is not None and highwater is not None:
                lag[tp.topic] = lag.get(tp.topic, 0) + max(0, highwater - position)
        for topic, value in lag.items():
            metrics.CONSUMER_LAG.labels(topic).set(value)

    # -- HTTP -----------------------------------------------------------------------------

    def _register_web(self) -> None:
        app, worker = self.app, self

        @app.page("/customers/{customer_id}")
        @app.table_route(table=worker.customers, match_info="customer_id")
        async def customer(web: View, request: Request, customer_id: str) -> Response:
            # table_route has forwarded the request here if this worker owns the customer.
            if worker.moving:
                # Partitions are moving and the table recovering: "no such customer" would
                # be a wrong answer, not a late one.
                return web.json(
                    {"error": "rebalancing: partitions are moving, retry"},
                    status=503,
                    headers={"Retry-After": "1"},
                )
            state = worker._find(customer_id, None)
            if state is None:
                return web.json({"error": f"no customer {customer_id!r}"}, status=404)
            grade = engine.snapshot(state, worker.policy)
            return web.bytes(orjson.dumps(grade), content_type="application/json")

        @app.page("/health")
        async def health(web: View, request: Request) -> Response:
            ok = worker.ready
            return web.json({"status": "ok" if ok else "starting"}, status=200 if ok else 503)

        @app.page("/metrics")
        async def prometheus(web: View, request: Request) -> Response:
            return web.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])


def frame(applied: dict[str, int], encoded: bytes) -> bytes:
    """A customer's table value: the input offsets applied to its state (per topic, the
    offset after the last record applied), a newline, then the encoded state. In one
    value, so that a kill never keeps one without the other. orjson escapes control
    characters, so the first newline ends the offsets."""
    return orjson.dumps(applied) + b"\n" + encoded


def unframe(value: bytes) -> tuple[dict[str, int], bytes]:
    """The inverse of `frame`; a value written before offsets were kept (an encoded state,
    a JSON array) has none."""
    if value[:1] != b"{":
        return {}, value
    head, _, encoded = value.partition(b"\n")
    return orjson.loads(head), encoded


def marker_key(topic: str, partition: int) -> bytes:
    """The table key of the progress marker of an input partition (see _on_record)."""
    return f"{MARKER_PREFIX}{topic}:{partition}".encode()


def _logged(timer: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
    """A faust timer whose exceptions are logged: one escaping stops the whole worker."""

    @functools.wraps(timer)
    async def logged() -> None:
        try:
            await timer()
        except Exception:
            log.exception("timer %s failed; it runs again at its next interval", timer.__name__)

    return logged


def run(settings: Settings, policy: Policy, loglevel: str = "info") -> None:
    """Start the worker in this process until SIGTERM/SIGINT."""
    worker = GradingWorker(settings, policy)
    log.info("starting worker with settings %s", settings)
    faust.Worker(worker.app, loglevel=loglevel).execute_from_commandline()
