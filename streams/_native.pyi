# The native core (native/, Rust; docs/grading.md, "Native hot path (Rust)").

from collections.abc import Callable
from typing import Any

from streams.core.compiled import CompiledPolicy

def reencode_state(data: bytes) -> bytes:
    """Decode an encoded state (format 2) and encode it again; ValueError naming the
    field for other bytes."""

def parse_whole_seconds(text: str) -> int | None:
    """`timefmt`'s fast path of parse_rfc3339; None where it asks `datetime`."""

def format_rfc3339(ts: int) -> str | None:
    """`timefmt.format_rfc3339` for years 1000-9999; None for other years."""

# What `State.apply` and `State.advance` answer.
APPLIED: int
DUPLICATE: int
ASK_PYTHON: int
STEPPED: int

def round4(x: float) -> float:
    """`measures.round4`: round(x, 4) bit for bit."""

def round2(x: float) -> float:
    """round(x, 2) bit for bit (the snapshot's monetary)."""

class Event:
    """An input event read by the native boundary (`Decoder.decode`)."""

    @property
    def customer_id(self) -> str: ...
    @property
    def event_id(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def at(self) -> int:
        """occurred_at as epoch seconds (`engine.event_time`)."""
    @property
    def raw(self) -> bytes:
        """The line it was read from."""

class Decoder:
    """The boundary's fast path for a file's lines (native/src/decode.rs)."""

    def __init__(
        self, schemas: list[tuple[str, str, str]], topic_of_type: dict[str, str], policy: Policy
    ) -> None: ...
    def decode(self, raw: bytes) -> Event | None:
        """The event of a line, or None: `contracts.decode` decides."""
    def replay(
        self,
        partitions: int,
        read: Callable[[bytes], tuple[dict[str, Any], str, int] | None],
        ask: Callable[
            [bytes, dict[str, Any] | bytes, int],
            tuple[Any, bool, list[dict[str, Any]], bytes | None],
        ],
        partition: Callable[[str], int],
    ) -> Replay:
        """A native replay loop (native/src/replay.rs) with this boundary and policy."""

class Replay:
    """`Replayer.feed_chunk`'s passes, sweeps and due index over native states."""

    def feed_chunk(
        self, lines: list[tuple[int, bytes]]
    ) -> tuple[list[Any], list[tuple[int, bytes, Any]]]:
        """(steps or output lists, in feed's order; dead lines (line, raw, rejection or
        None for `contracts.decode`'s), by line)."""
    def sweep(self, now: int) -> list[Any]:
        """Re-grade every customer due at or before `now`: steps, in order."""
    def grades(self, as_of: int | None) -> list[dict[str, Any] | bytes]:
        """Every customer's final grade by id; the state encoded where the native
        snapshot declines."""
    def customers(self) -> list[str]: ...
    def encoded(self, customer_id: str) -> bytes | None: ...
    def counts(self) -> tuple[int, int, int, int, int | None]:
        """(lines, applied, duplicates, regraded_by_time, stream_time)."""

class Policy:
    """The policy values the native code reads, from a compiled policy."""

    def __init__(self, compiled: CompiledPolicy) -> None: ...

class State:
    """One customer's state held natively, with the folds of `streams.core.folding`."""

    def __init__(self, customer_id: str) -> None: ...
    @staticmethod
    def decode(data: bytes) -> State: ...
    def encode(self) -> bytes: ...
    @property
    def window(self) -> tuple[int, int]: ...
    def fold_order(
        self, kind: int, order_id: str, ts: int, cents: int, full_price: bool, policy: Policy
    ) -> None: ...
    def fold_interaction(self, slot: int, ts: int, policy: Policy) -> int | None: ...
    def fold_complaint(
        self, kind: int, complaint_id: str, ts: int, severity: int, billing: bool, policy: Policy
    ) -> None: ...
    def fold_survey(
        self, ts: int, nps: int | float, csat: int | float, ces: int | float
    ) -> None: ...
    def remember(self, event_id: str, ts: int, policy: Policy) -> None: ...
    def measures(
        self, t: int, policy: Policy
    ) -> tuple[
        tuple[int | None, int, int, int, int, int],
        str,
        int,
        int,
        str,
        tuple[bool, bool, bool],
        tuple[str, bool, bool, list[bool]],
    ]: ...
    def churn(
        self, t: int, policy: Policy, engagement: bool
    ) -> tuple[tuple[float, float, int, float, float, float], tuple[float, int]]: ...
    def churn_reasons(self, t: int, policy: Policy) -> list[tuple[str, str]]: ...
    def settle(
        self, t: int, policy: Policy, how: int, orders: bool, churn: bool, at_once: bool
    ) -> list[tuple[str, str, str, str, float]]: ...
    def move_to(self, t: int) -> None: ...
    def prune(self, policy: Policy) -> None: ...
    def load(self, data: bytes) -> None:
        """Take the state these bytes encode."""
    @property
    def customer_id(self) -> str: ...
    @property
    def as_of(self) -> int: ...
    @property
    def seq(self) -> int: ...
    @property
    def due(self) -> int | None: ...
    def apply(self, event: Event, policy: Policy) -> int:
        """`engine.apply` for an event of the native boundary: APPLIED, STEPPED (applied,
        with steps to take), DUPLICATE, or ASK_PYTHON (untouched: the Python core must
        apply it, or say why it refuses it)."""
    def advance(self, now: int, policy: Policy) -> int:
        """`engine.advance`: STEPPED when there are steps to take, else APPLIED."""
    def take_steps(self, policy: Policy) -> list[Any]:
        """The re-grades of the last apply or advance, as the native loop gives them
        (`streams.native.outputs_of`)."""
    # Due times (`streams.core.due`) at the state's as_of; ValueError for a policy with a
    # churn model (not ported).
    def next_due(self, policy: Policy) -> int | None:
        """`due.next_due_c`."""
    def dues(
        self, policy: Policy
    ) -> tuple[
        int | None,
        int | None,
        int | None,
        int | None,
        int | None,
        int | None,
        int | None,
        int | None,
    ]:
        """(orders_due, order_times_due, intent_grade_due, complaints_due, holds_due,
        churn_due, churn_due with the worst engagement, band_due with the exact parts)."""
    def churn_due_before(self, before: int, worst_engagement: bool, policy: Policy) -> int | None:
        """`due.churn_due` with a due already known."""
    def band_due_before(self, before: int, policy: Policy) -> int | None:
        """`due.band_due` with the exact parts and a due already known."""
    def indicator_reached(self, slot: int, day: int, policy: Policy) -> bool:
        """`due.indicator_reached`; ValueError for a day without a bucket or a wrong slot."""
    # The grade snapshot (`streams.core.grading`); ValueError for a policy with a churn
    # model (not ported).
    def snapshot(self, t: int, policy: Policy) -> dict[str, Any] | None:
        """`grading.build_snapshot` at `t` (the state's as_of); None where the Python core
        must build it (a year outside 1000-9999)."""
    def churn_reasons_dicts(self, t: int, policy: Policy) -> list[dict[str, str]]:
        """`measures.churn_reasons` in its own shape, [{"code": ..., "message": ...}]."""
