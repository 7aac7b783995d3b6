"""Events from the future: the one rule by which the worker (under the event clock) and
replay keep a wrongly dated event from moving a partition's stream time.

Stream time, a partition's "now" under the event clock, is the latest event time
accepted there; every later event of the partition is judged by it: its customers are
brought to it, and an event older than the policy's lateness bound behind it is
`too_late`. One event dated years ahead (a producer's bad clock, a year 9999) would
move it there for good, and every event after it would come too late. So an event
dated more than the policy's `events.ahead_of_stream_days` after its partition's
stream time is refused as `from_the_future` and moves nothing.

Unless the next event of the partition agrees with it (dated within the bound of the
refused one): then time really jumped (a partition quiet for longer than the bound, a
backfill that skips a period) and that event is accepted; without this a partition
whose events stopped for longer than the bound would refuse every event after. The
price: the first event after such a gap is refused (a dead letter, which can be
re-driven), and two wrongly dated events in a row move the clock. A partition's first
event has nothing to be judged by and sets its stream time; the worker also refuses
any event dated more than `GRADESTREAM_MAX_AHEAD_SECONDS` after the wall clock
(nothing real comes from there), which replay, whose output depends on the file alone,
cannot.

Why 30 days by default, not the day the wall-clock bound allows nor the 7 days of
lateness (beyond which an accepted outlier already makes events too late): partitions
are quiet for longer. In a simulated year of 120 customers on 4 partitions a one-day
bound refused 324 of 3,845 events, a 7-day bound 42 of 685 of 20 customers; and with
the three input topics read at their own pace (docs/worker.md, "Ordering") a sparse
topic runs weeks ahead of the rest. An outlier less than 30 days ahead still moves the
clock: that is the trade.
"""

from __future__ import annotations

from typing import Final

from streams.core.errors import Rejection
from streams.core.policy import Policy

DAY: Final = 86_400


def ahead_of_stream_seconds(policy: Policy) -> int:
    """How far after its partition's stream time an event may be dated."""
    return policy.events.ahead_of_stream_days * DAY


class FutureCheck:
    """The rule, with what it remembers per partition: the time of the partition's
    latest event, if that one was refused."""

    def __init__(self, ahead_seconds: int) -> None:
        self.ahead_seconds = ahead_seconds
        self.refused: dict[int, int] = {}

    def refuses(self, partition: int, event_time: int, stream_time: int | None) -> bool:
        """Whether an event of `partition` at `event_time` is from the future, its stream
        time being `stream_time` (None: no event accepted there yet).

        >>> check = FutureCheck(ahead_seconds=10)
        >>> check.refuses(0, 1_000, None), check.refuses(0, 1_005, 1_000)
        (False, False)
        >>> check.refuses(0, 9_999, 1_005), check.refuses(0, 1_006, 1_005)
        (True, False)
        >>> check.refuses(0, 5_000, 1_006), check.refuses(0, 5_003, 1_006)
        (True, False)
        """
        ahead = self.ahead_seconds
        if stream_time is None or event_time <= stream_time + ahead:
            if self.refused:
                self.refused.pop(partition, None)
            return False
        before = self.refused.get(partition)
        if before is not None and abs(event_time - before) <= ahead:
            del self.refused[partition]
            return False
        self.refused[partition] = event_time
        return True

    def forget(self, partition: int) -> None:
        """Forget a refused event (the worker, when it takes a partition up again: the
        same record, read again, must not count as a second one)."""
        self.refused.pop(partition, None)


STREAM_TIME: Final = "its partition's stream time"


def rejection(occurred_at: str, ahead_seconds: int, reference: str = STREAM_TIME) -> Rejection:
    """The dead letter's reason: `reference` names what the event was judged by."""
    return Rejection(
        "from_the_future",
        f"/occurred_at: {occurred_at} is more than {ahead_seconds} s after {reference}",
    )
