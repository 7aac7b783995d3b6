"""faust's RocksDB table as the grading step's `Table` (`streams.app.states`).

Faust's table and its RocksDB store take the partition of a read or write from "the
record being processed", which `Stream.take_events` leaves unset (faust-streaming issue
497). So an agent names a record of each partition of its batch (`FaustTable.events`)
and every read or write of that partition is made with that record as the current one.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import faust


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

    def get(self, key: bytes, partition: int | None) -> bytes | None:
        event = None if partition is None else self.events.get(partition)
        with processing(event):
            value: bytes | None = self.table.get(key)
        return value

    def put(self, key: bytes, value: bytes, partition: int) -> None:
        with processing(self.events[partition]):
            self.table[key] = value

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        return iter(self.table.items())
