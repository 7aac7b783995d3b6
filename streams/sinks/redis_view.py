"""The Redis view of current grades, written from the customer-grades stream.

Keys (prefix from settings, default ``gradestream``):

- ``{prefix}:customer:{id}``  hash: ``grade`` (the snapshot JSON), ``as_of``, ``seq``,
  ``tier``, ``segment``, ``lifecycle``, ``churn_score``, ``churn_band``
- ``{prefix}:at-risk``        sorted set of customer ids by churn score; customers whose
  band is ``low`` are not in it
- ``{prefix}:tier:{tier}``    set of customer ids per tier

Writes are idempotent: a Lua script replaces a customer's entries only when the
snapshot's ``(as_of, seq)`` is newer than the stored one, so re-deliveries after a crash
and out-of-order batches cannot move the view backwards. A batch is one pipeline.
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

    async def write(self, snapshots: Iterable[Mapping[str, Any]]) -> int:
        """Write a batch in one pipeline; returns how many replaced an older snapshot."""
        batch = list(snapshots)
        if not batch:
            return 0

        async def attempt() -> int:
            pipe = self.client.pipeline(transaction=False)
            for grade in batch:
                await self._queue(pipe, grade)
            return sum(int(x) for x in await pipe.execute())

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

    async def read(self, customer_id: str) -> dict[str, Any] | None:
        raw = await self.client.hget(self.customer_key(customer_id), "grade")
        return None if raw is None else dict(orjson.loads(raw))
