"""The lifecycle stage at a time ``t`` (prospect, new, active, reactivated, silent,
churned) and the stages' names. A subject of its own because a stage depends on the
first, last and reactivating order times alone, with a fixed precedence; the due times
of its thresholds are in `due` and its transitions in `stepping`.
"""

from __future__ import annotations

from typing import Final

from streams.core.compiled import LIFECYCLE_STAGES, CompiledPolicy
from streams.core.state import CustomerState

PROSPECT: Final = 0
NEW: Final = 1
ACTIVE: Final = 2
REACTIVATED: Final = 3
SILENT: Final = 4
CHURNED: Final = 5


def lifecycle(s: CustomerState, t: int, c: CompiledPolicy) -> int:
    """Index into LIFECYCLE_STAGES; precedence: prospect, new, reactivated, churned, silent."""
    if s.live_orders <= 0 or s.last_order is None or s.first_order is None:
        return PROSPECT
    if t - s.first_order <= c.new_s:
        return NEW
    if s.reactivated_at is not None and t - s.reactivated_at <= c.reactivated_s:
        return REACTIVATED
    gap = t - s.last_order
    if gap > c.churned_s:
        return CHURNED
    if gap > c.silent_s:
        return SILENT
    return ACTIVE


def stage_name(i: int) -> str:
    return LIFECYCLE_STAGES[i]


def lifecycle_names() -> tuple[str, ...]:
    return LIFECYCLE_STAGES
