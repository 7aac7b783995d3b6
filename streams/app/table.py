"""faust's RocksDB table as the grading step's `Table` (`streams.app.states`).

Faust's table and its RocksDB store take the partition of a read or write from "the
record being processed", which `Stream.take_events` leaves unset (faust-streaming issue
497). So an agent names a record of each partition of its batch (`FaustTable.events`)
and every read or write of that partition is made with that record as the current one.

With the RocksDB store, reads and writes of a known partition skip faust's table: they
go to the partition's database directly, written once per batch and partition (one
`WriteBatch`, `FaustTable.flush`), and the writes' changelog records are sent through
the producer then, as the outbox sends. One write per batch, not one per key: each
write lets go of the GIL, and faust's consumer thread, which takes it then, may keep it
for a switch interval (5 ms). Through
faust, a read cost a missing-key exception and sensors, and each write a FutureMessage
with its callbacks and a RocksDB write of the changelog offset (docs/benchmarks.md,
"Worker"). The changelog records and offsets are what faust writes: recovery reads them.

The databases are written without RocksDB's write-ahead log, as Kafka Streams writes
its stores: the changelog topic is the durable copy, and the database a cache of it. A
kill loses the writes since RocksDB last flushed its memtable, the changelog offset that
faust stores with them included, so recovery reads them back from the changelog; and
the progress markers that come back with them make the worker read again what they
covered (docs/reliability.md). The log cost a quarter of each write's CPU, and the
memtables are small for the same reason (`ROCKSDB_OPTIONS`).
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import faust
import rocksdict
from faust.types import TP

from streams.app.outbox import Producer, Send, Sent, send_all

# The customers table's RocksDB options (faust's `RocksDBOptions`). Faust's 64 MiB
# memtables hold ~90,000 states of ~700 bytes: an insert into a skiplist that size misses
# the CPU's caches at each level, and cost about twice what an insert into an 8 MiB one
# does with 28,000 customers' states in play (docs/benchmarks.md, "Worker"). Flushes come
# more often, in RocksDB's own background thread.
ROCKSDB_OPTIONS: dict[str, Any] = {"write_buffer_size": 8 << 20}

_NO_WAL = rocksdict.WriteOptions()
# A property in rocksdict, which its type stubs give as a method.
_NO_WAL.disable_wal = True  # type: ignore[method-assign, assignment]


@contextmanager
def processing(event: faust.EventT[bytes] | None) -> Iterator[None]:
    """Make `event` the one being processed, for faust's table and its store."""
    if event is None:
        yield
        return
    token = faust.streams._current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        faust.streams._current_event.reset(token)


class FaustTable:
    """The customers table: states keyed by customer id bytes, and progress markers."""

    def __init__(self, table: Any) -> None:
        self.table = table
        # Per partition, a record read from it (set by the agents before each record):
        # faust takes only the partition from it, so any agent's will do.
        self.events: dict[int, faust.EventT[bytes]] = {}
        # The changelog records of the writes since the last flush, and a failed one's
        # error (raised by the next flush, as a failed delivery is).
        self.changelog: list[Send] = []
        self.failed: BaseException | None = None
        # The writes since the last flush, per partition: its database and their batch.
        # Read nothing back before `flush` writes them (the agents flush right after
        # persisting, with no await in between).
        self.writes: dict[int, tuple[Any, Any]] = {}
        # Per partition, its database once told to write without the log (a partition
        # assigned again comes with a database opened again).
        self.unlogged: dict[int, Any] = {}

    def get(self, key: bytes, partition: int | None) -> bytes | None:
        db = self._db(partition)
        if db is not None:
            found: bytes | None = db.get(key)
            return found
        event = None if partition is None else self.events.get(partition)
        with processing(event):
            value: bytes | None = self.table.get(key)
        return value

    def put(self, key: bytes, value: bytes, partition: int) -> None:
        pending = self.writes.get(partition)
        if pending is None:
            db = self._db(partition)
            if db is None:
                with processing(self.events[partition]):
                    self.table[key] = value
                return
            pending = self.writes[partition] = (db, rocksdict.WriteBatch(raw_mode=True))
        pending[1].put(key, value)
        self.changelog.append(Send(self.changelog_topic, key, value, partition))

    @functools.cached_property
    def changelog_topic(self) -> str:
        name: str = self.table.changelog_topic.get_topic_name()
        return name

    async def flush(self, producer: Producer) -> None:
        """Write the writes since the last flush, then send their changelog records; once
        the last of a partition is acknowledged, store its offset as faust does (from
        there, recovery reads the changelog)."""
        writes, self.writes = self.writes, {}
        for db, batch in writes.values():
            db.write(batch)
        if self.failed is not None:
            raise self.failed
        records, self.changelog = self.changelog, []
        for sent in await send_all(producer, records):
            sent.ack.add_done_callback(functools.partial(self._persisted, sent))

    def _persisted(self, sent: Sent, ack: Any) -> None:
        if ack.cancelled():
            return
        if ack.exception() is not None:
            self.failed = ack.exception()
            return
        store = self.table.data
        if sent.partition in store._dbs:  # not revoked meanwhile
            tp = TP(sent.topic, sent.partition)
            store.set_persisted_offset(tp, sent.last_offset())

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        return iter(self.table.items())

    def _db(self, partition: int | None) -> Any:
        """The RocksDB database of `partition` (None: not known, or not RocksDB)."""
        store = self.table.data
        if partition is None or not hasattr(store, "_db_for_partition"):
            return None
        db = store._db_for_partition(partition)
        if self.unlogged.get(partition) is not db:
            # Every write of this database from here, faust's own included: a write kept
            # by the log while an earlier one was lost would break recovery's order.
            db.set_write_options(_NO_WAL)
            self.unlogged[partition] = db
        return db
