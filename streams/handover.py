"""The Kafka side of `gradestream bootstrap`: what the live workers need to continue from
an instant T, written where they read it.

- `prepare`: the input topics must exist with the worker's partition count; the topics the
  worker writes are created when missing (as `gradestream topics create` does); an app id
  that already has state (changelog records, committed offsets) is refused unless forced,
  and one whose workers are running always is. Then the offsets at T.
- `offsets_at`: per input partition, the first offset whose record timestamp is at or
  after T (Kafka's offsets-for-times), or the end when there is none.
- `hand_over`: the states and per-partition progress markers to the table's changelog, each
  customer's grade to customer-grades (from where the Redis view fills), the historical
  output events if asked, and last the consumer group's offsets at T: until then a worker
  would not start from T, so an interrupted hand-over is redone with `--force`.

Everything goes through aiokafka's admin, consumer and producer APIs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streams.app.clients import kafka_consumer
from streams.app.progress import marker_key, marker_value
from streams.core.errors import GradestreamError
from streams.settings import Settings
from streams.topics import admin_client, changelog_topic, create_topics, describe_topics
from streams.topics import expected_topics as expected

# Records in flight before the producer's acknowledgements are awaited (memory stays flat).
IN_FLIGHT: Final = 10_000

# (topic, partition, key, value); value None: a tombstone.
Record = tuple[str, int | None, bytes, bytes | None]


class HandoverError(GradestreamError):
    """The hand-over is refused or failed; the message is one line saying why."""


def input_topics(settings: Settings) -> list[str]:
    """The worker's input topics, once each (all three kinds may share one)."""
    return list(dict.fromkeys(settings.input_topics().values()))


async def prepare(settings: Settings, until_ms: int, force: bool) -> dict[TopicPartition, int]:
    """Check the topics and the app id (see the module); return the offsets at T."""
    inputs = input_topics(settings)
    specs = expected(settings)
    admin = admin_client(settings)
    await admin.start()
    try:
        states = {state.spec.name: state for state in await describe_topics(admin, specs)}
        for name in inputs:
            if not states[name].exists:
                raise HandoverError(f"input topic {name!r} does not exist")
        missing = [spec for spec in specs if not states[spec.name].exists]
        for result in await create_topics(admin, missing) if missing else []:
            if result.outcome == "failed":
                raise HandoverError(f"cannot create topic {result.name!r}: {result.message}")
        for name, state in states.items():
            if state.exists and state.partitions != settings.partitions:
                raise HandoverError(
                    f"topic {name!r} has {state.partitions} partitions, the worker's "
                    f"GRADESTREAM_PARTITIONS is {settings.partitions}"
                )
        await refuse_existing_state(settings, admin, force)
    finally:
        await admin.close()
    async with kafka_consumer(settings) as client:
        return await offsets_at(client, inputs, settings.partitions, until_ms)


async def refuse_existing_state(
    settings: Settings, admin: AIOKafkaAdminClient, force: bool
) -> None:
    """Refuse when workers of the app id run, or (unless `force`) when it has state."""
    app_id = settings.app_id
    groups = [
        group
        for response in await admin.describe_consumer_groups([app_id])
        for group in response.to_object()["groups"]
    ]
    members = sum(len(group["members"]) for group in groups)
    if members:
        raise HandoverError(
            f"app id {app_id!r} has {members} running worker(s) in its consumer group; "
            "stop them before a bootstrap"
        )
    if force:
        return
    committed = await admin.list_consumer_group_offsets(app_id)
    positions = sum(1 for offset in committed.values() if offset.offset >= 0)
    async with kafka_consumer(settings) as client:
        records = await changelog_records(client, settings)
    if positions or records:
        raise HandoverError(
            f"app id {app_id!r} already has state ({records} changelog records, committed "
            f"offsets on {positions} partitions): use a new GRADESTREAM_APP_ID, or --force "
            "to overwrite it"
        )


def changelog_partitions(settings: Settings) -> list[TopicPartition]:
    return [TopicPartition(changelog_topic(settings), p) for p in range(settings.partitions)]


async def changelog_records(client: AIOKafkaConsumer, settings: Settings) -> int:
    """How many records the table's changelog holds (compaction aside)."""
    tps = changelog_partitions(settings)
    starts = await client.beginning_offsets(tps)
    ends = await client.end_offsets(tps)
    return sum(ends[tp] - starts[tp] for tp in tps)


async def offsets_at(
    client: AIOKafkaConsumer, topics: Iterable[str], partitions: int, until_ms: int
) -> dict[TopicPartition, int]:
    """Per partition of `topics`, the first offset with a timestamp at or after `until_ms`,
    or the end offset when every record is older."""
    tps = [TopicPartition(topic, p) for topic in topics for p in range(partitions)]
    found = await client.offsets_for_times(dict.fromkeys(tps, until_ms))
    ends = await client.end_offsets(tps)
    return {tp: ends[tp] if found[tp] is None else found[tp].offset for tp in tps}


@dataclass
class Handed:
    """What `hand_over` wrote."""

    states: int = 0
    markers: int = 0
    tombstones: int = 0
    grades: int = 0
    outputs: int = 0


async def live_keys(settings: Settings) -> list[tuple[int, bytes]]:
    """(partition, key) of every live key of the table's changelog: what a forced
    bootstrap deletes first, so that no customer of the old state survives (a key it
    writes again ends with its new value: compaction keeps the last record)."""
    live: dict[bytes, int] = {}
    async with kafka_consumer(settings) as client:
        tps = changelog_partitions(settings)
        ends = await client.end_offsets(tps)
        tps = [tp for tp in tps if ends[tp] > 0]
        if not tps:
            return []
        client.assign(tps)
        await client.seek_to_beginning(*tps)
        while [tp for tp in tps if await client.position(tp) < ends[tp]]:
            for tp, messages in (await client.getmany(timeout_ms=1000)).items():
                for m in messages:
                    if m.value is None:
                        live.pop(m.key, None)
                    else:
                        live[m.key] = tp.partition
    return [(p, key) for key, p in live.items()]


async def hand_over(
    settings: Settings,
    offsets: dict[TopicPartition, int],
    table: Iterable[tuple[int, bytes, bytes]],
    times: dict[int, int],
    grades: Iterable[tuple[bytes, bytes]],
    outputs: Iterable[tuple[str, bytes, bytes]],
    force: bool,
) -> Handed:
    """Write the table's states (partition, key, value) and markers, the grades and the
    outputs (topic, key, value), then commit the offsets (see the module)."""
    handed = Handed()
    admin = admin_client(settings)
    await admin.start()
    try:  # again: a worker may have been started while the history was graded
        await refuse_existing_state(settings, admin, force)
    finally:
        await admin.close()
    changelog = changelog_topic(settings)
    stale = await live_keys(settings) if force else []

    def records() -> Iterable[Record]:
        for partition, key in stale:
            handed.tombstones += 1
            yield changelog, partition, key, None
        for partition, key, value in table:
            handed.states += 1
            yield changelog, partition, key, value
        # The markers: where each input partition's handling starts, and its clock.
        for tp, offset in sorted(offsets.items()):
            handed.markers += 1
            value = marker_value(offset, times.get(tp.partition, 0))
            yield changelog, tp.partition, marker_key(tp.topic, tp.partition), value
        for key, value in grades:
            handed.grades += 1
            yield settings.topic_customer_grades, None, key, value
        for topic, key, value in outputs:
            handed.outputs += 1
            yield topic, None, key, value

    await produce(settings, records())
    async with kafka_consumer(settings, group=settings.app_id) as client:
        client.assign(list(offsets))
        await client.commit(offsets)
    return handed


async def produce(settings: Settings, records: Iterable[Record]) -> None:
    """Send every record (keyed records without a partition go where the worker's
    producer would put them: murmur2 of the key), waiting for every acknowledgement."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        acks="all",
        linger_ms=20,
        max_batch_size=1 << 20,
        **settings.kafka_client_options(),
    )
    await producer.start()
    try:
        pending: list[asyncio.Future[object]] = []
        for topic, partition, key, value in records:
            pending.append(await producer.send(topic, value, key=key, partition=partition))
            if len(pending) >= IN_FLIGHT:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
