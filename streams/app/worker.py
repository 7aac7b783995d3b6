"""The Faust worker: a thin shell that moves events between topics, the table and the core.

Per input record: decode and validate (`streams.contracts`), apply to the customer's
state (`streams.core.engine`), store the state, publish the output events and the new
grade. Bad records go to the dead-letter topic with their bytes, source and reason.

Time: a timer finds the customers whose due time has come in this worker's partitions
and sends each a keyed tick; the agent that owns the customer applies it, so every
state change happens inside stream iteration, where Faust keeps the RocksDB store and
the changelog together (a timer writing a table directly would not).

Redis: a separate agent reads customer-grades and writes the view, so a Redis outage
holds back only that agent (its offsets are not committed until Redis has the batch).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import faust
import orjson
import redis.asyncio as aioredis
from aiokafka.structs import TopicPartition
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams.app import metrics
from streams.contracts import dead_letter, decode
from streams.core import engine
from streams.core.errors import Rejection
from streams.core.policy import Policy
from streams.core.state import CustomerState
from streams.core.state import decode as decode_state
from streams.core.state import encode as encode_state
from streams.schedule import DueIndex
from streams.settings import Settings
from streams.sinks.redis_view import RedisView

log = logging.getLogger(__name__)

JSON = orjson.OPT_SORT_KEYS


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


def redis_client(settings: Settings) -> aioredis.Redis:
    options: dict[str, Any] = {}
    if settings.redis_password is not None:
        options["password"] = settings.redis_password.get_secret_value()
    if settings.redis_tls_ca_file is not None:
        options["ssl_ca_certs"] = str(settings.redis_tls_ca_file)
    return aioredis.from_url(settings.redis_url.get_secret_value(), **options)


class GradingWorker:
    """The Faust app, its topics, table and agents, built from settings and a policy."""

    def __init__(self, settings: Settings, policy: Policy) -> None:
        self.settings = settings
        self.policy = policy
        self.due = DueIndex()
        # Ready once the first assignment has been recovered and indexed (the /health probe).
        self.ready = False
        # Highest event time this worker has seen, overall and per input partition, and
        # the next offset to process per input partition: "now" under the event clock.
        self.stream_time = 0
        self.partition_time: dict[TopicPartition, int] = {}
        self.next_offset: dict[TopicPartition, int] = {}
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
            app.agent(topic, name=f"grade-{'-'.join(self.carries[topic_name])}", concurrency=1)(
                self._input_agent(topic_name)
            )
        app.agent(self.ticks, name="ticks", concurrency=1)(self._tick_agent)
        app.agent(self.grades, name="redis-view", concurrency=1)(self._view_agent)
        app.timer(self.settings.sweep_interval_seconds)(self._sweep)
        app.timer(5.0)(self._measure_lag)
        app.on_rebalance_complete.connect(self._rebuild_due_index)
        self._register_web()

    def _input_agent(
        self, topic_name: str
    ) -> Callable[[faust.StreamT[bytes]], AsyncIterator[None]]:
        events_in = metrics.EVENTS_IN.labels(topic_name)

        async def agent(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
            async for event in stream.events():
                events_in.inc()
                await self._on_record(topic_name, event)
                yield None

        return agent

    async def _on_record(self, topic_name: str, event: faust.EventT[bytes]) -> None:
        message = event.message
        value: bytes = message.value or b""
        key: bytes | None = message.key
        source = {"topic": message.topic, "partition": message.partition, "offset": message.offset}
        tp = TopicPartition(message.topic, message.partition)
        self.next_offset[tp] = message.offset + 1
        try:
            kinds = self.carries[topic_name]
            decoded = decode(value, kinds[0] if len(kinds) == 1 else None, key)
            if not isinstance(decoded, Rejection) and decoded.topic not in kinds:
                decoded = Rejection(
                    "wrong_topic",
                    f"/type: {decoded.event['type']!r} does not belong on {topic_name!r}",
                )
            if isinstance(decoded, Rejection):
                await self._dead_letter(value, key, source, decoded)
                return
            if decoded.rekeyed:
                # Keyless: send it again keyed by customer_id, so that it lands on the
                # partition (and worker) that owns the customer's state.
                await self.inputs[topic_name].send(key=decoded.key.encode(), value=value)
                return
            customer_id = decoded.key
            state = self._load(customer_id)
            result = engine.apply(state, decoded.event, self.policy)
            if result.rejection is not None:
                await self._dead_letter(value, key, source, result.rejection)
                return
            if result.duplicate:
                metrics.DUPLICATES.inc()
                return
            event_time = engine.event_time(decoded.event)
            self.stream_time = max(self.stream_time, event_time)
            if event_time > self.partition_time.get(tp, 0):
                self.partition_time[tp] = event_time
            await self._store(state, result.outputs)
            metrics.PROCESSING_SECONDS.observe(max(0.0, time.time() - message.timestamp))
        except Exception as exc:  # a bug must not stop the worker nor lose the record
            log.exception(
                "processing %s[%s]@%s failed", message.topic, message.partition, message.offset
            )
            reason = Rejection("processing_error", f"{type(exc).__name__}: {exc}"[:300])
            await self._dead_letter(value, key, source, reason)

    async def _tick_agent(self, stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        async for event in stream.events():
            message = event.message
            try:
                customer_id = (message.key or b"").decode()
                now = int(message.value or b"0")
                state = self._find(customer_id)
                if state is not None:
                    await self._store(state, engine.advance(state, now, self.policy))
            except Exception:  # a tick is re-sent by the next sweep; the worker goes on
                log.exception(
                    "tick %s[%s]@%s failed", message.topic, message.partition, message.offset
                )
            yield None

    async def _view_agent(self, stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        # Batches make one Redis pipeline per up to 500 snapshots.
        async for batch in stream.take(500, within=0.2):
            written = await self.view.write(orjson.loads(v) for v in batch)
            metrics.REDIS_WRITES.inc(written)
            yield None

    # -- state ----------------------------------------------------------------------------

    def _find(self, customer_id: str) -> CustomerState | None:
        raw = self.customers.get(customer_id.encode())
        return None if raw is None else decode_state(raw)

    def _load(self, customer_id: str) -> CustomerState:
        return self._find(customer_id) or engine.new_state(customer_id)

    async def _store(self, state: CustomerState, outputs: list[dict[str, Any]]) -> None:
        """Persist the state and publish what changed: output events, then the grade."""
        key = state.customer_id.encode()
        self.customers[key] = encode_state(state)
        self.due.set(state.customer_id, state.due)
        for output in outputs:
            kind = output["type"]
            metrics.OUTPUTS.labels(kind).inc()
            await self.outputs[kind].send(key=key, value=orjson.dumps(output, option=JSON))
        grade = engine.snapshot(state, self.policy)
        await self.grades.send(key=key, value=orjson.dumps(grade, option=JSON))

    async def _dead_letter(
        self, value: bytes, key: bytes | None, source: dict[str, Any], rejection: Rejection
    ) -> None:
        metrics.DEAD_LETTERS.labels(rejection.code).inc()
        log.info(
            "dead letter %s[%s]@%s: %s",
            source["topic"],
            source["partition"],
            source["offset"],
            rejection.code,
        )
        record = dead_letter(value, key, source, rejection)
        await self.dead_letters.send(key=key, value=orjson.dumps(record, option=JSON))

    # -- time -----------------------------------------------------------------------------

    def now(self) -> int:
        if self.settings.clock == "event":
            return self.event_now()
        return int(time.time())

    def event_now(self) -> int:
        """The event clock: the highest event time read, held back to the time of the
        slowest input partition that still has records to read.

        Partitions are fetched at their own pace: while one is far behind another, its
        customers must not be swept to the leader's time, or their own pending events
        would come too late (refused as too_late) or be graded out of order. Caught-up
        partitions do not hold the clock, so at the end every customer is swept to the
        highest event time, as replay sweeps them.
        """
        consumer = self.app.consumer
        committed: dict[Any, Any] = getattr(consumer, "_committed_offset", {})
        now = self.stream_time
        for tp in consumer.assignment():
            if tp.topic not in self.inputs:
                continue
            highwater = consumer.highwater(tp)
            done = self.next_offset.get(tp, committed.get(tp) or 0)
            if highwater is None or done < highwater:
                now = min(now, self.partition_time.get(tp, 0))
        return now

    async def _sweep(self) -> None:
        now = self.now()
        started = time.perf_counter()
        due = list(self.due.pop_due(now))
        for customer_id in due:
            await self.ticks.send(key=customer_id.encode(), value=str(now).encode())
        metrics.SWEEP_CUSTOMERS.observe(len(due))
        metrics.SWEEP_SECONDS.observe(time.perf_counter() - started)
        metrics.DUE_CUSTOMERS.set(len(self.due))

    async def _rebuild_due_index(self, *_: Any, **__: Any) -> None:
        """After a rebalance, index the due times of the customers this worker now owns."""
        started = time.perf_counter()
        items = ((k.decode(), decode_state(v).due) for k, v in self.customers.items())
        self.due.rebuild(items, keep=lambda _: True)
        if self.settings.clock == "event":
            # The event clock restarts from the stored states, as replay would continue
            # (held back by partitions still behind, see event_now).
            self.stream_time = max(self.stream_time, self._max_as_of())
        self.ready = True
        log.info("due index: %d customers in %.2fs", len(self.due), time.perf_counter() - started)

    def _max_as_of(self) -> int:
        return max((decode_state(v).as_of for v in self.customers.values()), default=0)

    async def _measure_lag(self) -> None:
        consumer = self.app.consumer
        assigned: set[TopicPartition] = consumer.assignment()
        lag: dict[str, int] = {}
        for tp in assigned:
            position = await consumer.position(tp)
            if position is not None:
                lag[tp.topic] = lag.get(tp.topic, 0) + max(0, consumer.highwater(tp) - position)
        for topic, value in lag.items():
            metrics.CONSUMER_LAG.labels(topic).set(value)

    # -- HTTP -----------------------------------------------------------------------------

    def _register_web(self) -> None:
        app, worker = self.app, self

        @app.page("/customers/{customer_id}")
        @app.table_route(table=worker.customers, match_info="customer_id")
        async def customer(web: View, request: Request, customer_id: str) -> Response:
            # table_route has forwarded the request here if this worker owns the customer.
            state = worker._find(customer_id)
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


def run(settings: Settings, policy: Policy, loglevel: str = "info") -> None:
    """Start the worker in this process until SIGTERM/SIGINT."""
    worker = GradingWorker(settings, policy)
    log.info("starting worker with settings %s", settings)
    faust.Worker(worker.app, loglevel=loglevel).execute_from_commandline()
