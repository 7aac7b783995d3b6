"""The grading step: input records and ticks in, records to send and new states out.

Faust-free, so that it is tested directly (tests/app/test_grading_step.py). Per input
record: decode and validate (`streams.contracts`), bring the customer to its partition's
stream time and apply the event (`streams.core.engine`), list the output events to send
(`Batch.sends`) and keep the new state (`Batch.states`, `Batch.changed`). Bad records
become dead letters with their bytes, source and reason; a keyless record is sent again
keyed by customer_id. `finish` adds each changed customer's latest grade; `persist`
writes the states and progress markers to the store. The agents (`streams.app.agents`)
decide which records to hand over and deliver the sends.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

from streams.app import metrics
from streams.app.clock import Clock
from streams.app.outbox import Send
from streams.app.progress import marker_key
from streams.app.shadow import Shadow
from streams.app.states import Batch, StateStore
from streams.contracts import dead_letter, decode
from streams.core import engine
from streams.core.due import min_due
from streams.core.errors import Rejection
from streams.core.policy import Policy
from streams.core.state import CustomerState

log = logging.getLogger(__name__)

JSON = orjson.OPT_SORT_KEYS


class Record(NamedTuple):
    """A Kafka record as the step reads it (timestamp: the record's, in seconds)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp: float = 0.0


@dataclass(frozen=True)
class Routes:
    """Where records go: per input topic the kinds of events it carries (usually one; a
    deployment may send all kinds to one topic), per output event type its topic."""

    carries: Mapping[str, tuple[str, ...]]
    outputs: Mapping[str, str]
    grades: str
    dead_letters: str


class GradingStep:
    """Applies records and ticks to the states of a `StateStore` (see the module)."""

    def __init__(
        self,
        policy: Policy,
        clock: Clock,
        store: StateStore,
        routes: Routes,
        shadow: Shadow | None = None,
    ) -> None:
        self.policy = policy
        self.clock = clock
        self.store = store
        self.routes = routes
        self.shadow = shadow  # a second policy graded alongside (streams.app.shadow)

    def record(self, record: Record, batch: Batch) -> None:
        """Handle an input record (the next of its partition) and note the partition's
        progress marker. A failure is a bug: logged, and the record is dead-lettered as
        processing_error with the customer's state as before it."""
        try:
            self._record(record, batch)
        except Exception as exc:  # a bug must not stop the worker nor lose the record
            log.exception("processing %s[%s]@%s failed", *record[:3])
            self._dead_letter(
                record, Rejection("processing_error", f"{type(exc).__name__}: {exc}"[:300]), batch
            )
        clock = self.clock.read_times.get((record.topic, record.partition), 0)
        marker = marker_key(record.topic, record.partition)
        batch.markers[marker] = (record.partition, record.offset + 1, clock)

    def _record(self, record: Record, batch: Batch) -> None:
        topic, partition, offset, key, value, timestamp = record
        kinds = self.routes.carries[topic]
        decoded = decode(value, kinds[0] if len(kinds) == 1 else None, key)
        if not isinstance(decoded, Rejection) and decoded.topic not in kinds:
            decoded = Rejection(
                "wrong_topic", f"/type: {decoded.event['type']!r} does not belong on {topic!r}"
            )
        if isinstance(decoded, Rejection):
            self._dead_letter(record, decoded, batch)
            return
        if decoded.rekeyed:
            # Keyless: send it again keyed by customer_id, so that it lands on the
            # partition (and worker) that owns the customer's state.
            batch.sends.append(Send(topic, decoded.key.encode(), value))
            return
        customer_id = decoded.key
        event_time = engine.event_time(decoded.event)
        ahead = self.clock.from_the_future(partition, event_time, decoded.event["occurred_at"])
        if ahead is not None:
            self._dead_letter(record, ahead, batch)
            return
        now = self.clock.read(topic, partition, event_time)
        if self.shadow is not None:
            source = (topic, partition, offset)
            self.shadow.record(source, customer_id, now, decoded.event, event_time, batch)
        state = self.store.load(customer_id, partition, batch)
        applied = batch.applied.setdefault(customer_id, {})
        if offset < applied.get(topic, 0):
            # Applied already and its state kept, though the partition's marker was not:
            # a kill between the two writes (`StateStore.persist`). Applied again, an event
            # the state has forgotten by now (older than its lateness floor) would be
            # refused as too_late instead of recognised as a duplicate.
            metrics.REDELIVERED.inc()
            return
        applied[topic] = offset + 1
        before = engine.revision(state)
        batch.steps[customer_id].append((now, decoded.event, event_time))
        try:
            # Under the event clock, first let time pass for this customer to its
            # partition's stream time, as replay's sweep has done by then: the outcome
            # must not depend on whether the asynchronous tick came first.
            outputs = engine.advance(state, now, self.policy) if now is not None else []
            result = engine.apply(state, decoded.event, self.policy, at=event_time)
            outputs += result.outputs
            if engine.revision(state) != before:
                self._publish(state, outputs, partition, batch)
        except Exception:
            self._undo(customer_id, partition, batch)
            raise
        if result.rejection is not None:
            self._dead_letter(record, result.rejection, batch)
        elif result.duplicate:
            metrics.DUPLICATES.inc()
        else:
            batch.produced_at.append(timestamp)

    def tick(self, record: Record, batch: Batch) -> None:
        """A record of the ticks topic: keyed by the customer, its value the time to let
        pass (`time_step`)."""
        customer_id = (record.key or b"").decode(errors="replace")
        try:
            now = int(record.value or b"0")
        except ValueError:
            log.error("tick %s[%s]@%s: not a time; skipped", *record[:3])
            return
        self.time_step(customer_id, record.partition, now, batch)

    def time_step(self, customer_id: str, partition: int, now: int, batch: Batch) -> None:
        """Let time pass for a due customer, to `now`. A failure is logged, and the state
        is left as before the step."""
        stepped = False
        try:
            if self.shadow is not None:
                self.shadow.tick(customer_id, partition, now, batch)
            state = self.store.find(customer_id, partition, batch)
            if state is None:
                return
            before, due = engine.revision(state), state.due
            batch.steps[customer_id].append((now, None, None))
            stepped = True
            outputs = engine.advance(state, now, self.policy)
            if engine.revision(state) != before:
                self._publish(state, outputs, partition, batch)
            elif state.due != due:  # a wake-up for nothing: only the due moved
                batch.changed.setdefault(customer_id, (partition, False))
        except Exception:
            log.exception("time step to %s of a customer of partition %s failed", now, partition)
            if stepped:
                self._undo(customer_id, partition, batch)

    def finish(self, batch: Batch) -> None:
        """Add each changed customer's latest grade to the sends: once per batch, as
        customer-grades is a compacted topic of latest grades (Kafka Streams' record
        cache coalesces the same way); and encode its state for `persist`."""
        for customer_id, (_, graded) in batch.changed.items():
            if graded:
                grade = engine.snapshot(batch.states[customer_id], self.policy)
                value = orjson.dumps(grade, option=JSON)
                key = customer_id.encode()
                batch.sends.append(Send(self.routes.grades, key, value, snapshot=grade))
            self.store.seal(batch, customer_id)
        if self.shadow is not None:
            self.shadow.finish(batch)

    def persist(self, batch: Batch) -> None:
        """Write the batch's states and markers (once its sends are acknowledged), and
        index the customers' new due times (with a shadow policy, the earlier of the two
        states')."""
        self.store.persist(batch)
        moved = {customer_id: partition for customer_id, (partition, _) in batch.changed.items()}
        if self.shadow is not None:
            moved |= self.shadow.persist(batch)
        for customer_id, partition in moved.items():
            state = batch.states.get(customer_id)
            due = None if state is None else state.due
            if self.shadow is not None:
                due = min_due(due, self.shadow.due(customer_id, batch))
            self.clock.due(partition).set(customer_id, due)

    def _undo(self, customer_id: str, partition: int, batch: Batch) -> None:
        """Rebuild a customer's state as it was before the record that failed: from the
        table (as before the batch) and the steps of the batch that went through; the
        failed one may have left the state half-changed. Their outputs are listed."""
        steps = batch.steps[customer_id]
        steps.pop()  # the failed record's
        state = batch.states[customer_id] = self.store.load(customer_id, partition, None)
        for now, event, at in steps:
            if now is not None:
                engine.advance(state, now, self.policy)
            if event is not None:
                engine.apply(state, event, self.policy, at=at)

    def _publish(
        self, state: CustomerState, outputs: list[dict[str, Any]], partition: int, batch: Batch
    ) -> None:
        """List a changed customer's output events; its grade and state go at the end."""
        key = state.customer_id.encode()
        for output in outputs:
            kind = output["type"]
            metrics.OUTPUTS.labels(kind).inc()
            value = orjson.dumps(output, option=JSON)
            batch.sends.append(Send(self.routes.outputs[kind], key, value))
        batch.changed[state.customer_id] = (partition, True)

    def _dead_letter(self, record: Record, rejection: Rejection, batch: Batch) -> None:
        metrics.DEAD_LETTERS.labels(rejection.code).inc()
        topic, partition, offset, key, value, _ = record
        # DEBUG: a flood of bad records must not become a flood of log lines (the
        # counter above, by reason, is what to watch).
        log.debug("dead letter %s[%s]@%s: %s", topic, partition, offset, rejection.code)
        source = {"topic": topic, "partition": partition, "offset": offset}
        letter = dead_letter(value, key, source, rejection)
        batch.sends.append(Send(self.routes.dead_letters, key, orjson.dumps(letter, option=JSON)))
