"""The customers' states as the worker keeps them, and the batch that changes them.

The table holds, per customer id, the encoded state framed with the input offsets
applied to it (`frame`), per input partition a progress marker
(`streams.app.progress`), and with a shadow policy the shadow states
(`streams.app.shadow`). `StateStore` reads and writes it through the `Table` protocol:
faust's RocksDB table in the worker (`streams.app.table`), `DictTable` without faust.

A `Batch` is what one batch of records did, published and persisted together: the
states read from the table once per batch and kept while it runs, the records to send,
the customers to persist, the markers to write.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from streams.app.outbox import Send
from streams.app.progress import marker_value
from streams.core import engine
from streams.core.state import CustomerState
from streams.core.state import decode as decode_state
from streams.core.state import encode as encode_state

# What a customer went through in a batch, to rebuild a state that a failing record left
# half-changed: (now to advance to, event to apply, its time).
Step = tuple[int | None, dict[str, Any] | None, int | None]


@dataclass
class Batch:
    """What one batch of records did (see the module's docstring)."""

    states: dict[str, CustomerState] = field(default_factory=dict)
    # Per customer with a state: per input topic, the offset after the last record applied
    # to it (stored with the state, see `frame`).
    applied: dict[str, dict[str, int]] = field(default_factory=dict)
    # The customers to persist: their partition, and whether their grade moved.
    changed: dict[str, tuple[int, bool]] = field(default_factory=dict)
    steps: defaultdict[str, list[Step]] = field(default_factory=lambda: defaultdict(list))
    # Records to send before the batch counts as handled, in the order they came.
    sends: list[Send] = field(default_factory=list)
    # The changed customers' table values (`StateStore.seal`), once the batch is finished.
    values: dict[str, bytes] = field(default_factory=dict)
    # The progress markers to write: their partitions, next offsets and event times
    # (`marker_value`, made once per marker when persisted).
    markers: dict[bytes, tuple[int, int, int]] = field(default_factory=dict)
    # Kafka timestamps of the records graded, for the latency histogram.
    produced_at: list[float] = field(default_factory=list)
    # The shadow policy's states and changes (streams.app.shadow), with one.
    shadow: Batch | None = None
    # The `StateStore.generation` the batch began in (None: it keeps no states in the
    # store's cache).
    generation: int | None = None


class Table(Protocol):
    """Bytes by bytes key; `partition` is the one the key belongs to, when known."""

    def get(self, key: bytes, partition: int | None) -> bytes | None: ...

    def put(self, key: bytes, value: bytes, partition: int) -> None: ...

    def items(self) -> Iterator[tuple[bytes, bytes]]: ...


class DictTable:
    """A `Table` over a dict, for the grading step without faust: the tests and
    bench/step_bench.py (the worker's is faust's RocksDB table, `streams.app.table`)."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}

    def get(self, key: bytes, partition: int | None) -> bytes | None:
        return self.data.get(key)

    def put(self, key: bytes, value: bytes, partition: int) -> None:
        self.data[key] = value

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        return iter(list(self.data.items()))


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


class StateStore:
    """Customers' states in a `Table`, read once per batch, the latest `cache_size` kept
    decoded.

    Why the cache: decoding a state cost more CPU than grading the event that needed it
    (docs/benchmarks.md, "Worker"). A batch takes a customer's state out of the cache and
    gives it back once persisted, so the cache only ever holds states as the table holds
    them: a batch that fails leaves its customers out, to be decoded from the table again.
    `forget` empties it when partitions move (another worker may change their states);
    a batch begun before that gives nothing back (`generation`).
    """

    def __init__(self, table: Table, cache_size: int = 0) -> None:
        self.table = table
        self.cache_size = cache_size
        # customer_id -> (applied offsets, state), least recently persisted first.
        self.cache: dict[str, tuple[dict[str, int], CustomerState]] = {}
        self.generation = 0

    def batch(self) -> Batch:
        """A new batch, whose states come from and go back to the cache."""
        return Batch(generation=self.generation)

    def forget(self) -> None:
        """Partitions are moving: empty the cache; batches running now give nothing back."""
        self.cache.clear()
        self.generation += 1

    def find(
        self, customer_id: str, partition: int | None, batch: Batch | None
    ) -> CustomerState | None:
        """The customer's state as of the batch (None: no state), or as of the table."""
        if batch is not None and customer_id in batch.states:
            return batch.states[customer_id]
        if batch is not None and batch.generation == self.generation:
            cached = self.cache.pop(customer_id, None)
            if cached is not None:
                batch.applied[customer_id], state = cached
                batch.states[customer_id] = state
                return state
        key = customer_id.encode()
        if key[:1] == b"\x00":
            return None  # the table's own keys (markers, shadow states): no customer id
        raw = self.table.get(key, partition)
        if raw is None:
            return None
        applied, encoded = unframe(raw)
        state = decode_state(encoded)
        if batch is not None:
            batch.states[customer_id] = state
            batch.applied[customer_id] = applied
        return state

    def load(self, customer_id: str, partition: int, batch: Batch | None) -> CustomerState:
        """The customer's state, a new one if it has none."""
        state = self.find(customer_id, partition, batch)
        if state is None:
            state = engine.new_state(customer_id)
            if batch is not None:
                batch.states[customer_id] = state
        return state

    def marker(self, key: bytes, partition: int) -> bytes | None:
        return self.table.get(key, partition)

    def seal(self, batch: Batch, customer_id: str) -> bytes:
        """Encode a changed customer's table value as the batch leaves it. The grading
        step does it when it takes the customer's grade (`GradingStep.finish`), not when
        the batch is persisted: encoding walks the state as the snapshot has just done,
        before the batch's sends are awaited and faust's work between evicts it from the
        CPU's caches (on the 1M-event drain, 8.7 against 10.5 µs per state)."""
        applied, state = batch.applied.get(customer_id, {}), batch.states[customer_id]
        value = batch.values[customer_id] = frame(applied, encode_state(state))
        return value

    def persist(self, batch: Batch) -> None:
        """The changed states, then the markers: a kill in between then leaves records
        that are handled again (their events are duplicates), never a record counted as
        handled whose state was not kept. The changed states go back to the cache."""
        keep = batch.generation == self.generation and self.cache_size > 0
        for customer_id, (partition, _) in batch.changed.items():
            value = batch.values.get(customer_id)
            if value is None:
                value = self.seal(batch, customer_id)
            self.table.put(customer_id.encode(), value, partition)
            if keep:
                self.cache[customer_id] = (
                    batch.applied.get(customer_id, {}),
                    batch.states[customer_id],
                )
        for marker, (partition, next_offset, clock) in batch.markers.items():
            self.table.put(marker, marker_value(next_offset, clock), partition)
        while len(self.cache) > self.cache_size:
            del self.cache[next(iter(self.cache))]
