"""Which customers are due for re-grading: a min-heap of (due time, customer_id).

Time moves grades without events (recency, window expiry, grace periods), so a sweep
re-grades the customers whose next possible change has come, without scanning
everyone. Replay and the worker share this index. Entries are never removed in place:
a customer whose due time changed is pushed again, and stale entries are skipped when
popped, which keeps every operation O(log n).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator

from aiokafka.partitioner import murmur2


def partition_of(customer_id: str, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2, as Java's and aiokafka's
    producers use) gives a record keyed by `customer_id`.

    Under the event clock, time is kept per partition, as the worker sees it; replay
    uses this to see the same time.

    >>> [partition_of(c, 4) for c in ("cust-000001", "cust-000002", "cust-000003")]
    [1, 2, 3]
    """
    if partitions == 1:
        return 0
    return key_partition(customer_id.encode(), partitions)


def key_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a record with this key."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


class DueIndex:
    """Due times by customer, popped in time order.

    >>> index = DueIndex()
    >>> index.set("c-1", 300); index.set("c-2", 100); index.set("c-1", 200)
    >>> list(index.pop_due(250))
    ['c-2', 'c-1']
    >>> len(index)
    0
    """

    __slots__ = ("_due", "_heap")

    def __init__(self) -> None:
        self._heap: list[tuple[int, str]] = []
        self._due: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._due)

    def set(self, customer_id: str, due: int | None) -> None:
        """Record the customer's next due time (None: nothing can change without an event)."""
        if due is None:
            self._due.pop(customer_id, None)
            return
        if self._due.get(customer_id) == due:
            return
        self._due[customer_id] = due
        heapq.heappush(self._heap, (due, customer_id))
        # Stale entries accumulate when due times move often; rebuild before they dominate.
        if len(self._heap) > 4 * len(self._due) + 1024:
            self._heap = [(d, c) for c, d in self._due.items()]
            heapq.heapify(self._heap)

    def next_due(self) -> int | None:
        """The earliest due time, or None when no customer is due ever."""
        while self._heap:
            due, customer_id = self._heap[0]
            if self._due.get(customer_id) == due:
                return due
            heapq.heappop(self._heap)
        return None

    def pop_due(self, now: int) -> Iterator[str]:
        """Yield, in due order, each customer due at or before `now`, removing it."""
        heap, current = self._heap, self._due
        while heap and heap[0][0] <= now:
            due, customer_id = heapq.heappop(heap)
            if current.get(customer_id) == due:
                del current[customer_id]
                yield customer_id

    def rebuild(self, items: Iterator[tuple[str, int | None]], keep: Callable[[str], bool]) -> None:
        """Replace the index with `items`, keeping the customers `keep` accepts."""
        self._due = {c: d for c, d in items if d is not None and keep(c)}
        self._heap = [(d, c) for c, d in self._due.items()]
        heapq.heapify(self._heap)
