"""The clock's sweeps: the due customers taken by input batches and by the timer's ticks."""

from __future__ import annotations

import pytest

from streams.app.clock import Clock
from tests.core.builders import DAY, T0


def clock_with_due() -> Clock:
    """An event clock at T0 + 10 days on partitions 0 and 1, each with a customer due
    and one not due yet."""
    clock = Clock("event", 86_400)
    for partition in (0, 1):
        clock.read("orders", partition, T0 + 10 * DAY)
        clock.due(partition).set(f"c{partition}", T0 + DAY)
        clock.due(partition).set(f"later{partition}", T0 + 20 * DAY)
    return clock


def test_an_input_batch_takes_the_due_customers_of_its_partitions_only() -> None:
    clock = clock_with_due()
    assert clock.take_due([0], 100) == [("c0", 0, T0 + 10 * DAY)]
    assert clock.take_due([0], 100) == []
    assert clock.due_count() == 3


def test_a_batch_takes_at_most_its_limit_and_leaves_the_rest_due() -> None:
    clock = clock_with_due()
    clock.due(0).set("c2", T0 + 2 * DAY)
    assert [c for c, _, _ in clock.take_due([0, 1], 2)] == ["c0", "c2"]
    assert [c for c, _, _ in clock.take_due([0, 1], 2)] == ["c1"]


async def test_the_timer_ticks_what_no_batch_took_and_a_failed_tick_stays_due() -> None:
    clock = clock_with_due()
    clock.take_due([0], 100)
    ticked: list[tuple[str, int, int]] = []

    async def send_tick(customer_id: str, partition: int, now: int) -> None:
        ticked.append((customer_id, partition, now))

    await clock.sweep(send_tick)
    assert ticked == [("c1", 1, T0 + 10 * DAY)]

    clock.due(1).set("c3", T0 + 3 * DAY)

    async def failing(customer_id: str, partition: int, now: int) -> None:
        raise ConnectionError("broker gone")

    with pytest.raises(ConnectionError):
        await clock.sweep(failing)
    assert clock.take_due([1], 100) == [("c3", 1, T0 + 10 * DAY)]
