"""The shadow policy: a second policy the worker grades with, alongside the live one, whose
grades go to a topic of their own and nowhere else.

So a new policy can be watched on live traffic before it is switched on (product.md §5):
every record and tick the grading step handles is applied to the customer's shadow state
too, under the shadow policy, and each customer whose shadow grade moved in a batch gets
its snapshot sent to the shadow grades topic (compacted, key = customer_id), once per
batch as customer-grades. Nothing else leaves the shadow: its tier changes, churn alerts,
lifecycle changes and warnings are dropped, and Redis and HTTP show the live grades only.
Switching it live is the ordinary policy change (outputs then carry its version, cause
`policy_change`).

Shadow states are kept in the live table under keys of their own (`SHADOW_PREFIX` and the
customer id: no customer id starts with a control character), framed with the input
offsets applied to them as the live ones are: durable, in the same changelog, bounded as
every state is (docs/grading.md, "Bounds"), and a record is applied to each exactly once.
A customer's due time in the worker's index is the earlier of its two states' dues.

A failure in the shadow is a bug that must not touch the live grading: it is logged and
the customer's shadow state is read again from the table for its next record.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import orjson

from streams.app.outbox import Send
from streams.app.states import Batch, StateStore, Table
from streams.core import engine
from streams.core.policy import Policy

log = logging.getLogger(__name__)

SHADOW_PREFIX = b"\x00shadow:"


def is_shadow(key: bytes) -> bool:
    return key.startswith(SHADOW_PREFIX)


class ShadowKeys:
    """The worker's table as a `Table` of shadow states, by customer id."""

    def __init__(self, table: Table) -> None:
        self.table = table

    def get(self, key: bytes, partition: int | None) -> bytes | None:
        return self.table.get(SHADOW_PREFIX + key, partition)

    def put(self, key: bytes, value: bytes, partition: int) -> None:
        self.table.put(SHADOW_PREFIX + key, value, partition)

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        for key, value in self.table.items():
            if is_shadow(key):
                yield key[len(SHADOW_PREFIX) :], value


class Shadow:
    """Grades the grading step's records and ticks again under `policy` (see the module)."""

    def __init__(self, policy: Policy, table: Table, topic: str) -> None:
        self.policy = policy
        self.store = StateStore(ShadowKeys(table))
        self.topic = topic

    def part(self, batch: Batch) -> Batch:
        """The shadow's share of a batch: its states, offsets and changed customers."""
        if batch.shadow is None:
            batch.shadow = Batch()
        return batch.shadow

    def record(
        self,
        source: tuple[str, int, int],
        customer_id: str,
        now: int | None,
        event: dict[str, Any],
        at: int,
        batch: Batch,
    ) -> None:
        """Apply an input event (from `source`: topic, partition, offset) as the live step
        does: time first to `now` (the event clock), then the event."""
        topic, partition, offset = source
        part = self.part(batch)
        try:
            state = self.store.load(customer_id, partition, part)
            applied = part.applied.setdefault(customer_id, {})
            if offset < applied.get(topic, 0):
                return  # applied already (a kill before the partition's marker was kept)
            applied[topic] = offset + 1
            before = engine.revision(state)
            if now is not None:
                engine.advance(state, now, self.policy)
            engine.apply(state, event, self.policy, at=at)
            self._moved(customer_id, partition, engine.revision(state) != before, part)
        except Exception:
            log.exception("shadow policy: %s[%s]@%s failed", topic, partition, offset)
            self._forget(customer_id, part)

    def tick(self, customer_id: str, partition: int, now: int, batch: Batch) -> None:
        """Let time pass to `now` for the customer's shadow state, if it has one."""
        part = self.part(batch)
        try:
            state = self.store.find(customer_id, partition, part)
            if state is None:
                return
            before, due = engine.revision(state), state.due
            engine.advance(state, now, self.policy)
            if engine.revision(state) != before or state.due != due:
                self._moved(customer_id, partition, engine.revision(state) != before, part)
        except Exception:
            log.exception("shadow policy: tick of %r failed", customer_id)
            self._forget(customer_id, part)

    def finish(self, batch: Batch) -> None:
        """The latest shadow grade of each customer whose shadow grade moved."""
        part = batch.shadow
        if part is None:
            return
        for customer_id, (_, graded) in part.changed.items():
            if graded:
                grade = engine.snapshot(part.states[customer_id], self.policy)
                value = orjson.dumps(grade, option=orjson.OPT_SORT_KEYS)
                batch.sends.append(Send(self.topic, customer_id.encode(), value))

    def persist(self, batch: Batch) -> dict[str, int]:
        """Write the batch's changed shadow states; return them with their partitions."""
        part = batch.shadow
        if part is None:
            return {}
        self.store.persist(part)
        return {customer_id: partition for customer_id, (partition, _) in part.changed.items()}

    def due(self, customer_id: str, batch: Batch) -> int | None:
        """The customer's shadow due time, if the batch read its shadow state."""
        part = batch.shadow
        state = None if part is None else part.states.get(customer_id)
        return None if state is None else state.due

    def _moved(self, customer_id: str, partition: int, graded: bool, part: Batch) -> None:
        was = part.changed.get(customer_id)
        part.changed[customer_id] = (partition, graded or (was is not None and was[1]))

    def _forget(self, customer_id: str, part: Batch) -> None:
        part.states.pop(customer_id, None)
        part.applied.pop(customer_id, None)
        part.changed.pop(customer_id, None)
