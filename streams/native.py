"""The native replay loop (`streams._native.Replay`, native/src/replay.rs) and the Python
side it calls: what `streams.replay.Replayer` runs when the native core is built and can
grade under the policy (no churn model yet: its signal is not ported).

Both loops write the same bytes (tests/native/test_replay.py). The native one decodes,
folds, re-grades and keeps the due times; the rare rest stays written once, in Python:
a line the native boundary does not take (a refusal, a fraction of a second, a nested
extra field) goes to `contracts.decode`; an event the native core does not take (one
`engine.apply` refuses, a value f64 cannot hold exactly) is applied by the Python core
to the decoded state, which the native state takes back; the output events are built
by `engine.outputs` from each step's state.
"""

from __future__ import annotations

from typing import Any

from streams import contracts
from streams.core import engine
from streams.core.compiled import CompiledPolicy
from streams.core.errors import Rejection
from streams.core.policy import Policy
from streams.core.state import CustomerState, decode, encode
from streams.core.stepping import Transition
from streams.schedule import partition_of

try:
    from streams import _native

    BUILT = True
except ImportError:  # installed without cargo: the Python core alone
    BUILT = False

__all__ = ["NativeReplay", "available", "outputs_of", "why_not"]


def why_not(policy: Policy) -> str | None:
    """Why the native loop cannot replay under `policy`; None when it can."""
    if not BUILT:
        return "the native core is not built (no cargo when gradestream was installed)"
    if policy.compiled.model is not None:
        return "the native core does not grade a policy with a churn model yet"
    return None


def available(policy: Policy) -> bool:
    return why_not(policy) is None


def outputs_of(steps: list[Any], c: CompiledPolicy) -> list[dict[str, Any]]:
    """The output events of the native loop's steps, in order: a step tuple
    (customer_id, cause kind, time, transitions, what they quote: (snapshot, reasons) or
    the state then encoded, the event's (type, id) or None), or a list of output events
    the Python core built already."""
    out: list[dict[str, Any]] = []
    for step in steps:
        if isinstance(step, list):
            out.extend(step)
            continue
        customer_id, kind, t, trans, view, event = step
        if event is None:
            cause: dict[str, Any] = {"kind": kind}
        else:
            cause = {"kind": kind, "event_type": event[0], "event_id": event[1]}
        transitions = [Transition(*x) for x in trans]
        if isinstance(view, bytes):  # the native snapshot declined: the state, encoded
            out.extend(engine.outputs(decode(view), t, transitions, cause, c))
        else:
            snapshot, reasons = view
            out.extend(
                engine.output_events(customer_id, t, transitions, cause, c, snapshot, reasons)
            )
    return out


class NativeReplay:
    """A native replay loop: `Replayer`'s feed_chunk, sweep and final states."""

    def __init__(self, policy: Policy, partitions: int) -> None:
        reason = why_not(policy)
        if reason is not None:
            raise ValueError(reason)
        self.policy = policy
        self.compiled = policy.compiled
        fold = _native.Policy(policy.compiled)
        decoder = _native.Decoder(contracts.schema_sources(), contracts.TOPIC_OF_TYPE, fold)
        self.loop = decoder.replay(
            partitions, self._read, self._ask, lambda c: partition_of(c, partitions)
        )

    def feed_chunk(
        self, lines: list[tuple[int, bytes]]
    ) -> tuple[list[dict[str, Any]], list[tuple[int, bytes, Rejection]]]:
        """The outputs and dead letters of `lines`, each in `Replayer.feed`'s order."""
        steps, dead = self.loop.feed_chunk(lines)
        return self._outputs(steps), [
            (line_no, raw, self._refusal(raw) if why is None else why) for line_no, raw, why in dead
        ]

    def sweep(self, now: int) -> list[dict[str, Any]]:
        return self._outputs(self.loop.sweep(now))

    def counts(self) -> tuple[int, int, int, int, int | None]:
        """(lines, applied, duplicates, regraded_by_time, stream_time) so far."""
        return self.loop.counts()

    def grades(self, as_of: int | None) -> list[dict[str, Any] | bytes]:
        """Every customer's final grade by id (`Replay.grades`)."""
        return self.loop.grades(as_of)

    def states(self) -> dict[str, CustomerState]:
        """Every customer's state, as the Python core's, by id (sorted)."""
        out: dict[str, CustomerState] = {}
        for customer_id in self.loop.customers():
            data = self.loop.encoded(customer_id)
            assert data is not None
            out[customer_id] = decode(data)
        return out

    def _outputs(self, steps: list[Any]) -> list[dict[str, Any]]:
        return outputs_of(steps, self.compiled)

    @staticmethod
    def _refusal(raw: bytes) -> Rejection:
        decoded = contracts.decode(raw)
        assert isinstance(decoded, Rejection), "the native loop refused a line decode takes"
        return decoded

    @staticmethod
    def _read(raw: bytes) -> tuple[dict[str, Any], str, int] | None:
        """A line the native boundary left: (event, customer_id, time), None if refused."""
        decoded = contracts.decode(raw)
        if isinstance(decoded, Rejection):
            return None
        return decoded.event, decoded.key, engine.event_time(decoded.event)

    def _ask(
        self, data: bytes, event: dict[str, Any] | bytes, at: int
    ) -> tuple[Rejection | None, bool, list[dict[str, Any]], bytes | None]:
        """Apply an event the native core left to the Python core, on the decoded state:
        (rejection, duplicate, outputs, the state after, None if unchanged)."""
        if isinstance(event, bytes):  # a line the native boundary read
            decoded = contracts.decode(event)
            assert not isinstance(decoded, Rejection), decoded
            event = decoded.event
        state = decode(data)
        result = engine.apply(state, event, self.policy, at=at)
        after = encode(state) if result.changed else None
        return result.rejection, result.duplicate, result.outputs, after
