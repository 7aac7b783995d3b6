"""The grading core's per-event API (`engine`) over either core: the Python one, or the
native one (`streams._native`, native/), which replay uses when it is built and the
policy has no churn model (its signal is not ported yet).

Both give the same outputs, byte for byte (tests/native/test_replay.py). The native core
folds, re-grades and keeps the due times; the rare rest is the Python core's, written
once: the output events (ids, snapshots, churn reasons) are built from the state each
native step carries, and an event the native core does not take (one `apply` refuses,
or an odd value such as an int beyond 2**52) is applied by the Python core to the
decoded state, which the native state then takes back.
"""

from __future__ import annotations

from typing import Any, Protocol

from streams import contracts
from streams.contracts import TOPIC_OF_TYPE, schema_sources
from streams.core import engine
from streams.core.errors import Rejection
from streams.core.policy import Policy
from streams.core.state import CustomerState, decode, encode
from streams.core.stepping import Transition

try:
    from streams import _native
except ImportError:  # built without cargo: the Python core alone
    _native = None  # type: ignore[assignment]


class Core(Protocol):
    """What replay asks of a core: the engine's functions, with the policy bound."""

    name: str

    def decode(self, raw: bytes) -> Any | None:
        """A line's event read natively, or None: `contracts.decode` decides."""

    def new_state(self, customer_id: str) -> Any: ...
    def apply(self, state: Any, event: Any, at: int) -> engine.Result: ...
    def advance(self, state: Any, now: int) -> list[dict[str, Any]]: ...
    def python(self, state: Any) -> CustomerState: ...


def available(policy: Policy) -> bool:
    """Can the native core grade under `policy`?"""
    return _native is not None and policy.compiled.model is None


def core_for(policy: Policy, native: bool | None = None) -> Core:
    """The native core when `native` (an error if it cannot grade under `policy`), the
    Python core when not, and when None the native one if `available`."""
    if native is None:
        native = available(policy)
    if not native:
        return PythonCore(policy)
    if _native is None:
        raise ValueError("the native core is not built (no cargo at install time)")
    if policy.compiled.model is not None:
        raise ValueError("the native core cannot grade a policy with a churn model yet")
    return NativeCore(policy)


class PythonCore:
    name = "python"

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    def decode(self, raw: bytes) -> None:
        return None

    def new_state(self, customer_id: str) -> CustomerState:
        return engine.new_state(customer_id)

    def apply(self, state: CustomerState, event: dict[str, Any], at: int) -> engine.Result:
        return engine.apply(state, event, self.policy, at=at)

    def advance(self, state: CustomerState, now: int) -> list[dict[str, Any]]:
        return engine.advance(state, now, self.policy)

    def python(self, state: CustomerState) -> CustomerState:
        return state


class NativeCore:
    name = "native"

    def __init__(self, policy: Policy) -> None:
        assert _native is not None
        self.policy = policy
        self.compiled = policy.compiled
        self.fold = _native.Policy(policy.compiled)
        self.decoder = _native.Decoder(schema_sources(), TOPIC_OF_TYPE, self.fold)

    def decode(self, raw: bytes) -> _native.Event | None:
        return self.decoder.decode(raw)

    def new_state(self, customer_id: str) -> _native.State:
        return _native.State(customer_id)

    def apply(self, state: _native.State, event: Any, at: int) -> engine.Result:
        """`event`: an `Event` of `decode`, or the dict of `contracts.decode` for a line
        `decode` left to it (the Python core applies those)."""
        if isinstance(event, _native.Event):
            code = state.apply(event, self.fold)
            if code == _native.APPLIED:
                return engine.Result(changed=True)
            if code == _native.DUPLICATE:
                return engine.Result(duplicate=True)
            if code == _native.STEPPED:
                return engine.Result(self._outputs(state.take_steps(), event), changed=True)
            decoded = contracts.decode(event.raw)
            assert not isinstance(decoded, Rejection), decoded  # the native boundary took it
            event = decoded.event
        # The state is untouched; a refusal leaves the copy untouched too.
        copy = decode(state.encode())
        result = engine.apply(copy, event, self.policy, at=at)
        if result.changed:
            state.load(encode(copy))
        return result

    def advance(self, state: _native.State, now: int) -> list[dict[str, Any]]:
        if state.advance(now, self.fold) == _native.STEPPED:
            return self._outputs(state.take_steps(), None)
        return []

    def python(self, state: _native.State) -> CustomerState:
        return decode(state.encode())

    def _outputs(
        self, steps: list[tuple[str, int, list[Any], bytes]], event: _native.Event | None
    ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for kind, t, trans, data in steps:
            if event is not None and kind == "event":
                cause = {"kind": "event", "event_type": event.type, "event_id": event.event_id}
            else:
                cause = {"kind": kind}
            transitions = [Transition(*x) for x in trans]
            out.extend(engine.outputs(decode(data), t, transitions, cause, self.compiled))
        return out


__all__ = ["Core", "NativeCore", "PythonCore", "available", "core_for"]
