"""The Redis view of current grades, written from the customer-grades stream.

Keys (prefix from settings, default ``gradestream``):

- ``{prefix}:customer:{id}``  hash: ``grade`` (the snapshot JSON), ``as_of``, ``seq``,
  ``tier``, ``segment``, ``lifecycle``, ``churn_score``, ``churn_band``
- ``{prefix}:at-risk``        sorted set of customer ids by churn score; customers whose
  band is ``low`` are not in it
- ``{prefix}:tier:{tier}``    set of customer ids per tier
- ``{prefix}:positions``      hash: per customer-grades partition (``{topic}:{partition}``),
  the next offset to write; every snapshot below it is in the view

Writes are idempotent: a Lua script replaces a customer's entries only when the
snapshot's ``(as_of, seq)`` is newer than the stored one, so re-deliveries after a crash
and out-of-order batches cannot move the view backwards. A batch is one pipeline, with
the positions it reached last: Redis runs a connection's commands in order, so a
position is never stored ahead of the snapshots below it. The view keeps its own
positions because the consumer's committed offsets can pass snapshots that were never
written (faust drops fetched records when a rebalance cuts in, then commits past them):
the worker reads on from the position, not the offset (docs/reliability.md).
Redis being down only delays the view: the batch is retried with backoff, forever,
and the customer-grades consumer does not move on until it lands.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

log = logging.getLogger(__name__)

# KEYS: customer hash, at-risk zset, the new tier's set.
# ARGV: customer id, as_of (epoch s), seq, grade JSON, tier, segment, lifecycle,
#       churn score, churn band, tier-set key prefix.
_WRITE_IF_NEWER = """
local stored = redis.call('HMGET', KEYS[1], 'as_of', 'seq', 'tier')
local as_of, seq = tonumber(ARGV[2]), tonumber(ARGV[3])
if stored[1] then
  local old_as_of, old_seq = tonumber(stored[1]), tonumber(stored[2])
  if old_as_of > as_of or (old_as_of == as_of and old_seq >= seq) then return 0 end
  if stored[3] ~= ARGV[5] then redis.call('SREM', ARGV[10] .. stored[3], ARGV[1]) end
end
redis.call('HSET', KEYS[1], 'as_of', ARGV[2], 'seq', ARGV[3], 'grade', ARGV[4],
  'tier', ARGV[5], 'segment', ARGV[6], 'lifecycle', ARGV[7],
  'churn_score', ARGV[8], 'churn_band', ARGV[9])
redis.call('SADD', KEYS[3], ARGV[1])
if ARGV[9] == 'low' then
  redis.call('ZREM', KEYS[2], ARGV[1])
else
  redis.call('ZADD', KEYS[2], ARGV[8], ARGV[1])
end
return 1
"""


def epoch(rfc3339: str) -> int:
    return int(datetime.fromisoformat(rfc3339).timestamp())


class RedisView:
    """Writes grade snapshots to Redis, newest wins."""

    def __init__(self, client: aioredis.Redis, prefix: str = "gradestream") -> None:
        self.client = client
        self.prefix = prefix
        self._script = client.register_script(_WRITE_IF_NEWER)
        # Retry forever: an outage must delay the view, never drop a snapshot.
        self._retry = Retry(ExponentialBackoff(cap=5.0, base=0.1), retries=-1)

    def customer_key(self, customer_id: str) -> str:
        return f"{self.prefix}:customer:{customer_id}"

    @property
    def at_risk_key(self) -> str:
        return f"{self.prefix}:at-risk"

    def tier_key(self, tier: str) -> str:
        return f"{self.prefix}:tier:{tier}"

    @property
    def positions_key(self) -> str:
        return f"{self.prefix}:positions"

    async def write(
        self, snapshots: Iterable[Mapping[str, Any]], positions: Mapping[str, int] | None = None
    ) -> int:
        """Write a batch, then the `positions` it reached, in one pipeline; returns how
        many snapshots replaced an older one."""
        batch = list(snapshots)
        if not batch and not positions:
            return 0

        async def attempt() -> int:
            pipe = self.client.pipeline(transaction=False)
            for grade in batch:
                await self._queue(pipe, grade)
            if positions:
                pipe.hset(self.positions_key, items=[x for kv in positions.items() for x in kv])
            replies = await pipe.execute()
            return sum(int(x) for x in replies[: len(batch)])

        async def on_failure(error: Exception) -> None:
            log.warning(
                "redis view: write of %d snapshots failed (%s); retrying", len(batch), error
            )

        return await self._retry.call_with_retry(attempt, on_failure)

    async def _queue(self, pipe: aioredis.client.Pipeline, grade: Mapping[str, Any]) -> None:
        customer_id = grade["customer_id"]
        churn = grade["churn"]
        # On a pipeline the awaited call only queues EVALSHA; execute() loads the script
        # first if Redis does not know it yet.
        await self._script(
            keys=[self.customer_key(customer_id), self.at_risk_key, self.tier_key(grade["tier"])],
            args=[
                customer_id,
                epoch(grade["as_of"]),
                grade["seq"],
                orjson.dumps(grade, option=orjson.OPT_SORT_KEYS),
                grade["tier"],
                grade["segment"],
                grade["lifecycle"],
                churn["score"],
                churn["band"],
                f"{self.prefix}:tier:",
            ],
            client=pipe,
        )

    async def positions(self) -> dict[str, int]:
        """The stored positions, by ``{topic}:{partition}`` (retried like a write)."""

        async def attempt() -> dict[str, int]:
            stored = await self.client.hgetall(self.positions_key)
            # The client answers bytes (no decode_responses); str only if configured so.
            return {_text(field): int(value) for field, value in stored.items()}

        async def on_failure(error: Exception) -> None:
            log.warning("redis view: reading the positions failed (%s); retrying", error)

        return await self._retry.call_with_retry(attempt, on_failure)

    async def read(self, customer_id: str) -> dict[str, Any] | None:
        raw = await self.client.hget(self.customer_key(customer_id), "grade")
        return None if raw is None else dict(orjson.loads(raw))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
