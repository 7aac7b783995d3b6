"""The Faust worker's wiring: its topics, table, agents, timers and routes.

What each part does lives in its own module: the grading step (`grading_step`, no
Faust), the states and the batch (`states`, `table`), the outbox of sends (`outbox`),
per-partition progress and the seek-back watch (`progress`), the clock and sweeps
(`clock`), the grading agents (`agents`), the Redis view's writer (`view_writer`), the HTTP
routes (`web`) and the clients (`clients`). docs/worker.md tells the whole story.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

import faust

from streams.app import metrics
from streams.app.agents import GradingAgents
from streams.app.clients import (
    faust_app,
    kafka_consumer,
    pause_fetching,
    redis_client,
    track_topics,
)
from streams.app.clock import Clock
from streams.app.grading_step import GradingStep, Routes
from streams.app.lag import measure_lag
from streams.app.outbox import Producer
from streams.app.progress import Progress, is_marker, marker_place, read_marker
from streams.app.shadow import Shadow, is_shadow
from streams.app.states import StateStore, unframe
from streams.app.table import ROCKSDB_OPTIONS, FaustTable
from streams.app.view_writer import ViewWriter
from streams.app.web import Status, register_routes
from streams.core.due import min_due
from streams.core.future import ahead_of_stream_seconds
from streams.core.policy import Policy
from streams.core.state import decode as decode_state
from streams.schedule import partition_of
from streams.settings import Settings
from streams.sinks.redis_view import RedisView

log = logging.getLogger(__name__)

# The cyclic garbage collector's thresholds (Python's: 700, 10, 10). Under a backlog the
# decoded states, the records the aligner holds and the grades queued for Redis outlive
# the young generations, and with Python's thresholds a full collection, which walks every
# one of them, ran every two seconds: a tenth of the worker's CPU on the 1M-event drain
# (docs/benchmarks.md, "Worker"). Nearly all garbage here is freed by reference counting;
# the collector is left for cycles, less often: with 10,000 allocations between young
# collections, they still took 3.4 s of that drain's CPU, with 50,000 1.5 s.
GC_THRESHOLDS = (50_000, 20, 100)


class GradingWorker:
    """The Faust app, its topics, table and agents, built from settings and a policy (and
    a shadow policy, graded alongside to its own topic: `streams.app.shadow`)."""

    def __init__(
        self, settings: Settings, policy: Policy, shadow_policy: Policy | None = None
    ) -> None:
        self.settings = settings
        self.app = app = faust_app(settings)
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
        # One agent reads them all, in event-time order across them (docs/worker.md,
        # "Event time across topics").
        self.inputs = tuple(carried)
        self.input_topic = app.topic(*carried, partitions=p)
        self.outputs = {
            "tier_changed": internal(settings.topic_tier_changes),
            "churn_risk_changed": internal(settings.topic_churn_risk),
            "lifecycle_changed": internal(settings.topic_lifecycle_changes),
            "tier_warning": internal(settings.topic_tier_warnings),
        }
        self.grades = internal(settings.topic_customer_grades, compacting=True)
        self.shadow_grades = (
            None
            if shadow_policy is None
            else internal(settings.topic_shadow_grades, compacting=True)
        )
        self.dead_letters = internal(settings.topic_dead_letters)
        self.ticks = internal(settings.topic_ticks)
        # States as compact bytes (core.state.encode), keyed by customer_id bytes. The
        # changelog Faust keeps for it is compacted, never time-retained.
        self.customers = app.Table(
            "customers",
            partitions=p,
            key_type=bytes,
            value_type=bytes,
            options=dict(ROCKSDB_OPTIONS),  # a copy: faust's store pops keys from it
        )

        self.status = Status()
        ahead = ahead_of_stream_seconds(policy)
        self.clock = Clock(settings.clock, settings.max_ahead_seconds, ahead)
        self.table = FaustTable(self.customers)
        self.store = StateStore(self.table, settings.state_cache_customers)
        routes = Routes(
            carries={name: tuple(kinds) for name, kinds in carried.items()},
            outputs={kind: topic.get_topic_name() for kind, topic in self.outputs.items()},
            grades=settings.topic_customer_grades,
            dead_letters=settings.topic_dead_letters,
        )
        shadow = None
        if shadow_policy is not None:
            shadow = Shadow(shadow_policy, self.table, settings.topic_shadow_grades)
        self.step = GradingStep(policy, self.clock, self.store, routes, shadow)
        self.progress = Progress(lambda: app.consumer, settings.stall_seconds, settings.stall_tries)
        self.view = ViewWriter(
            RedisView(redis_client(settings), settings.redis_key_prefix),
            settings.topic_customer_grades,
            functools.partial(kafka_consumer, settings),
            settings.view_batch_size,
            settings.view_queue_batches,
        )
        self.agents = GradingAgents(
            self.step,
            self.table,
            self.progress,
            self._producer,
            settings.batch_size,
            settings.batch_wait_seconds,
            settings.align_wait_seconds,
            settings.align_hold_records,
            lambda: app.consumer,
            self.view.offer,
            lambda tps, paused: pause_fetching(app.consumer, tps, paused),
        )
        self.status.view_error = lambda: self.view.view.error
        self._register()

    def _register(self) -> None:
        app, settings = self.app, self.settings
        inputs = self.agents.inputs(*self.inputs)
        app.agent(self.input_topic, name="grade-inputs", concurrency=1)(inputs)
        ticks = self.agents.ticks(settings.topic_ticks)
        app.agent(self.ticks, name="ticks", concurrency=1)(ticks)
        app.task(self.view.run)
        app.timer(settings.stall_seconds / 2)(_logged(self.view.watch))
        app.timer(settings.sweep_interval_seconds)(_logged(self._sweep))
        app.timer(settings.lag_interval_seconds)(_logged(self._measure_lag))
        app.timer(settings.stall_seconds / 2)(_logged(self.progress.watch))
        app.on_partitions_revoked.connect(self._on_moving)
        app.on_rebalance_complete.connect(self._recover)
        register_routes(
            app,
            self.customers,
            self.status,
            self.step.policy,
            lambda customer_id: self.store.find(customer_id, None, None),
        )

    async def _sweep(self) -> None:
        ticks = self.settings.topic_ticks

        async def send_tick(customer_id: str, partition: int, now: int) -> None:
            value = str(now).encode()
            await self.app.producer.send(ticks, customer_id.encode(), value, partition, None, None)

        await self.clock.sweep(send_tick)

    async def _measure_lag(self) -> None:
        consumer = self.app.consumer
        await measure_lag(consumer)
        self.status.view_lag = self.view.lag()
        metrics.VIEW_LAG.set(self.status.view_lag)

    async def _on_moving(self, *_: Any, **__: Any) -> None:
        self.status.moving = True
        self.store.forget()

    async def _recover(self, *_: Any, **__: Any) -> None:
        """After a rebalance: declare the topics the worker writes, then index the due
        times of the customers this worker now owns and load its progress markers."""
        started = time.perf_counter()
        # Faust creates only the internal topics an agent reads. Those the worker only
        # writes must exist before its first send: in the benchmark, sends to a topic the
        # broker was still auto-creating stalled the producer. Before streams resume; once.
        written = (*self.outputs.values(), self.grades, self.dead_letters, *self._shadow_topic())
        await asyncio.gather(*(topic.maybe_declare() for topic in written))
        self._track_written_topics()
        clock, progress, partitions = self.clock, self.progress, self.settings.partitions
        clock.dues = {}
        self.store.forget()
        progress.reset()
        self.agents.reset()
        graded_at: dict[int, int] = {}
        resume_at: dict[int, int] = {}
        dues: dict[str, tuple[int, int | None]] = {}  # the earlier of live and shadow dues
        for key, value in self.table.items():
            if is_marker(key):
                topic, partition = marker_place(key)
                next_offset, read_time = read_marker(value)
                progress.done[key] = next_offset
                resume_at[partition] = max(resume_at.get(partition, 0), read_time)
                clock.read_times[(topic, partition)] = read_time
                continue
            state = decode_state(unframe(value)[1])
            partition = partition_of(state.customer_id, partitions)
            other = dues.get(state.customer_id)
            due = state.due if other is None else min_due(other[1], state.due)
            dues[state.customer_id] = (partition, due)
            if not is_shadow(key):
                graded_at[partition] = max(graded_at.get(partition, 0), state.as_of)
        for customer_id, (partition, due) in dues.items():
            clock.due(partition).set(customer_id, due)
        # The event clock resumes where handling stopped (the markers); for a table
        # without markers, at the latest time a customer of the partition was graded.
        for partition, at in (graded_at | resume_at).items():
            clock.resume(partition, at)
        self.view.assigned(
            tp.partition for tp in self.app.consumer.assignment() if tp.topic in self.inputs
        )
        self.status.ready = True
        self.status.moving = False
        count = clock.due_count()
        log.info("due index: %d customers in %.2fs", count, time.perf_counter() - started)

    def _producer(self) -> Producer:
        """aiokafka's producer inside faust's (a new one after some rebalances)."""
        return cast(Producer, cast(Any, self.app.producer)._ensure_producer())

    def _track_written_topics(self) -> None:
        """Every rebalance, before streams resume: faust may have started a new producer."""
        written = (*self.outputs.values(), self.dead_letters, self.grades, self.ticks)
        written += self._shadow_topic()
        # The inputs too: a keyless record is sent to its input topic again, keyed.
        names = [*self.inputs, self.customers.changelog_topic.get_topic_name()]
        track_topics(
            cast(Any, self._producer()), names + [topic.get_topic_name() for topic in written]
        )

    def _shadow_topic(self) -> tuple[faust.TopicT, ...]:
        return () if self.shadow_grades is None else (self.shadow_grades,)


def _logged(timer: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
    """A faust timer whose exceptions are logged: one escaping stops the whole worker."""

    @functools.wraps(timer)
    async def logged() -> None:
        try:
            await timer()
        except Exception:
            log.exception("timer %s failed; it runs again at its next interval", timer.__name__)

    return logged


def run(
    settings: Settings, policy: Policy, loglevel: str = "info", shadow_policy: Policy | None = None
) -> None:
    """Start the worker in this process until SIGTERM/SIGINT."""
    # Faust creates the data directory itself, but not its parents.
    settings.datadir.mkdir(parents=True, exist_ok=True)
    worker = GradingWorker(settings, policy, shadow_policy)
    gc.set_threshold(*GC_THRESHOLDS)
    log.info("starting worker with settings %s", settings)
    faust.Worker(worker.app, loglevel=loglevel).execute_from_commandline()
