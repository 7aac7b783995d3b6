"""The clients the worker talks through, built from the settings: the faust app (its
Kafka consumer, producer and web server) and the Redis client.

Secrets stay inside the settings' `SecretStr`s until a client is built here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import faust
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition
from faust.sensors import Monitor

from streams.app.web import App
from streams.settings import Settings

# How old the Kafka clients' cluster metadata may get. Kafka's default, 5 min, is how long
# a broker-restart trial waited to catch up once; a refresh is one small request.
METADATA_MAX_AGE_MS = 10_000


class QuietMonitor(Monitor):
    """Faust's monitor without its per-record statistics. Faust's default keeps counts,
    timings and offsets of every record for faust's own stats pages, which the worker
    does not serve (its metrics are Prometheus's, `streams.app.metrics`); kept, they cost
    about 2 % of the worker's CPU on a backlog (docs/benchmarks.md, "Worker"). What
    faust records per commit, send or rebalance is kept."""

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        pass

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> None:
        return None

    def on_stream_event_out(
        self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None
    ) -> None:
        pass

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        pass


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


def faust_app(settings: Settings) -> faust.App:
    """The faust app: raw bytes in and out, a RocksDB store, at-least-once."""
    return App(
        settings.app_id,
        broker=f"kafka://{settings.kafka_bootstrap_servers}",
        store="rocksdb://",
        datadir=str(settings.datadir),
        web_host=settings.web_host,
        web_bind=settings.web_bind or settings.web_host,
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
        producer_max_batch_size=settings.producer_max_batch_bytes,
        producer_metadata_max_age_ms=METADATA_MAX_AGE_MS,
        consumer_metadata_max_age_ms=METADATA_MAX_AGE_MS,
        Monitor=QuietMonitor,
        **faust_credentials(settings),
    )


async def pause_fetching(consumer: Any, tps: Iterable[TopicPartition], paused: bool) -> None:
    """Pause (or resume) fetching `tps` in aiokafka itself, from faust's consumer thread,
    which owns the aiokafka consumer. Not faust's `pause_partitions`: its consumer drops
    the records of a paused partition that it has fetched but not handed over yet, its
    position past them; aiokafka's pause keeps the position at the first record not
    returned. Partitions no longer assigned are passed over (a new assignment starts
    unpaused)."""
    thread = consumer._thread

    async def switch() -> None:
        client = thread._ensure_consumer()
        assigned = client.assignment()
        chosen = [tp for tp in map(TopicPartition._make, tps) if tp in assigned]
        if chosen:
            (client.pause if paused else client.resume)(*chosen)

    await thread.call_thread(switch)


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


@asynccontextmanager
async def kafka_consumer(
    settings: Settings, group: str | None = None
) -> AsyncIterator[AIOKafkaConsumer]:
    """A consumer with the worker's connection settings, subscribed to nothing."""
    client = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
        **settings.kafka_client_options(),
    )
    await client.start()
    try:
        yield client
    finally:
        await client.stop()


def redis_client(settings: Settings) -> aioredis.Redis:
    options: dict[str, Any] = {}
    if settings.redis_password is not None:
        options["password"] = settings.redis_password.get_secret_value()
    if settings.redis_tls_ca_file is not None:
        options["ssl_ca_certs"] = str(settings.redis_tls_ca_file)
    return aioredis.from_url(settings.redis_url.get_secret_value(), **options)
