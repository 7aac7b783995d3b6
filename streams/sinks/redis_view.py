"""The Redis view of current grades, written from the customer-grades stream.

Keys (prefix from settings, default ``gradestream``):

- ``{prefix}:customer:{id}``  hash: ``grade`` (the snapshot JSON), ``as_of``, ``seq``,
  ``tier``, ``segment``, ``lifecycle``, ``churn_score``, ``churn_band``
- ``{prefix}:at-risk``        sorted set of customer ids by churn score; customers whose
  band is ``low`` are not in it
- ``{prefix}:tier:{tier}``    set of customer ids per tier
- ``{prefix}:positions``      hash: per customer-grades partition (``{topic}:{partition}``),
  the next offset to write; every snapshot below it is in the view
- ``{prefix}:life``           a random token naming the life of the data the positions
  describe

Writes are idempotent: a Lua script replaces a customer's entries only when the
snapshot's ``(as_of, seq)`` is newer than the stored one, so re-deliveries after a crash
and out-of-order batches cannot move the view backwards. A batch is one pipeline, with
the positions it reached last: Redis runs a connection's commands in order, so a
position is never stored ahead of the snapshots below it. The view keeps its own
positions, not a consumer group's committed offsets, which can pass snapshots that were
never written (docs/reliability.md). Redis being down only delays the view: the batch
is retried with backoff, forever, while grading goes on; meanwhile `error` says why,
for /health.

A Redis that comes back empty (restarted without persistence, flushed, its keys
evicted) must not be given the positions of snapshots it no longer holds: the batch
being retried would store the position it reached, and every customer graded before
the outage would be missing for good. So positions belong to a life: the view joins
Redis's life when it loads the positions (starting one, with no positions, if Redis has
none) and stores positions only while Redis still holds that life. Otherwise
`ViewLost` is raised, and the writer forgets its positions and rebuilds the view from
the compacted topic (`streams.app.view_writer`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from streams.core.timefmt import parse_rfc3339

log = logging.getLogger(__name__)

# Each customer of a batch in one call, in four arguments whatever the batch's size: the
# Python client's cost per command, then per argument, was the view's largest cost. KEYS:
# the at-risk zset. ARGV: the customer-hash key prefix, the tier-set key prefix, a JSON
# array with per customer [id, as_of (epoch s), seq, tier, segment, lifecycle, churn
# score, churn band] as strings and the length of its grade JSON, then the grades' JSON
# one after the other. Returns how many replaced an older one.
_WRITE_IF_NEWER = """
local written = 0
local customer_prefix, tier_prefix, grades = ARGV[1], ARGV[2], ARGV[4]
local from = 1
for _, row in ipairs(cjson.decode(ARGV[3])) do
  local id, as_of, seq, tier, band = row[1], row[2], row[3], row[4], row[8]
  local grade = string.sub(grades, from, from + row[9] - 1)
  from = from + row[9]
  local key = customer_prefix .. id
  local stored = redis.call('HMGET', key, 'as_of', 'seq', 'tier')
  local newer = true
  if stored[1] then
    local old_as_of, old_seq = tonumber(stored[1]), tonumber(stored[2])
    local new_as_of, new_seq = tonumber(as_of), tonumber(seq)
    if old_as_of > new_as_of or (old_as_of == new_as_of and old_seq >= new_seq) then
      newer = false
    elseif stored[3] ~= tier then
      redis.call('SREM', tier_prefix .. stored[3], id)
    end
  end
  if newer then
    redis.call('HSET', key, 'as_of', as_of, 'seq', seq, 'grade', grade,
      'tier', tier, 'segment', row[5], 'lifecycle', row[6],
      'churn_score', row[7], 'churn_band', band)
    redis.call('SADD', tier_prefix .. tier, id)
    if band == 'low' then
      redis.call('ZREM', KEYS[1], id)
    else
      redis.call('ZADD', KEYS[1], row[7], id)
    end
    written = written + 1
  end
end
return written
"""


# KEYS: life, positions. ARGV: a token for a new life. A Redis with no life starts one,
# with no positions (any there are not known to belong with the snapshots): returns the
# life and the positions (field, value, ...).
_JOIN_LIFE = """
local life = redis.call('GET', KEYS[1])
if not life then
  life = ARGV[1]
  redis.call('SET', KEYS[1], life)
  redis.call('DEL', KEYS[2])
end
return {life, redis.call('HGETALL', KEYS[2])}
"""

# KEYS: life, positions. ARGV: the writer's life, then field, value pairs. Returns 1 if
# stored, 0 if Redis is in another life.
_SET_POSITIONS = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[2], unpack(ARGV, 2))
return 1
"""


class ViewLost(Exception):
    """Redis no longer holds the life the view's positions belong to: it lost its data."""


class RedisView:
    """Writes grade snapshots to Redis, newest wins."""

    def __init__(self, client: aioredis.Redis, prefix: str = "gradestream") -> None:
        self.client = client
        self.prefix = prefix
        self._script = client.register_script(_WRITE_IF_NEWER)
        self._join_life = client.register_script(_JOIN_LIFE)
        self._set_positions = client.register_script(_SET_POSITIONS)
        # The life the loaded positions belong to (None: not joined yet).
        self.life: bytes | str | None = None
        # What the last talk with Redis failed with (None: it went through): the view's
        # health. The class name only: a message may name the server.
        self.error: str | None = None
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

    @property
    def life_key(self) -> str:
        return f"{self.prefix}:life"

    async def write(
        self,
        snapshots: Iterable[Mapping[str, Any]],
        positions: Mapping[str, int] | None = None,
        raw: Sequence[bytes] | None = None,
    ) -> int:
        """Write a batch, then the `positions` it reached, in one pipeline; returns how
        many snapshots replaced an older one. `raw`: each snapshot's JSON as sent
        (sorted keys), if at hand. Raises `ViewLost` (the snapshots written,
        the positions not) if Redis is no longer in the life the positions were loaded
        in (`load_positions`)."""
        batch = list(snapshots)
        if not batch and not positions:
            return 0
        life_and_positions: list[bytes | str | int] = []
        if positions:
            if self.life is None:
                raise ViewLost("positions written before any were loaded")
            life_and_positions = [self.life, *(x for kv in positions.items() for x in kv)]

        async def attempt() -> int:
            pipe = self.client.pipeline(transaction=False)
            if batch:
                # On a pipeline the awaited call only queues EVALSHA; execute() loads the
                # script first if Redis does not know it yet.
                await self._script(
                    keys=[self.at_risk_key], args=self._args(batch, raw), client=pipe
                )
            if life_and_positions:
                # Checked after the snapshots, in the same pipeline: a Redis that lost
                # its data since the positions were loaded is in another life (or none).
                await self._set_positions(
                    keys=[self.life_key, self.positions_key],
                    args=life_and_positions,
                    client=pipe,
                )
            replies = await pipe.execute()
            if life_and_positions and not replies[-1]:
                raise ViewLost("Redis lost the view's data")
            return int(replies[0]) if batch else 0

        async def on_failure(error: Exception) -> None:
            self.error = type(error).__name__
            log.warning(
                "redis view: write of %d snapshots failed (%s); retrying", len(batch), error
            )

        written: int = await self._retry.call_with_retry(attempt, on_failure)
        self.error = None
        return written

    def _args(self, batch: list[Mapping[str, Any]], raw: Sequence[bytes] | None) -> list[Any]:
        if raw is None:
            raw = [orjson.dumps(grade, option=orjson.OPT_SORT_KEYS) for grade in batch]
        rows = []
        for grade, value in zip(batch, raw, strict=True):
            churn = grade["churn"]
            fields = (grade["tier"], grade["segment"], grade["lifecycle"], repr(churn["score"]))
            as_of, seq = str(parse_rfc3339(grade["as_of"])), str(grade["seq"])
            rows.append((grade["customer_id"], as_of, seq, *fields, churn["band"], len(value)))
        return [self.customer_key(""), self.tier_key(""), orjson.dumps(rows), b"".join(raw)]

    async def load_positions(self) -> dict[str, int]:
        """The stored positions, by ``{topic}:{partition}``, in the view's life: joins
        Redis's life the first time (or after `forget`); raises `ViewLost` if Redis is
        in another one since. Retried like a write."""

        async def attempt() -> tuple[bytes | str, list[bytes | str]]:
            keys = [self.life_key, self.positions_key]
            life, flat = await self._join_life(keys=keys, args=[uuid.uuid4().hex])
            return life, flat

        async def on_failure(error: Exception) -> None:
            self.error = type(error).__name__
            log.warning("redis view: reading the positions failed (%s); retrying", error)

        life, flat = await self._retry.call_with_retry(attempt, on_failure)
        self.error = None
        if self.life is not None and life != self.life:
            raise ViewLost("Redis lost the view's data")
        self.life = life
        return {_text(flat[i]): int(flat[i + 1]) for i in range(0, len(flat), 2)}

    async def same_life(self) -> bool:
        """Whether Redis still holds the life the view joined (true before it joined one).
        One try: a Redis that does not answer raises."""
        try:
            stored = await self.client.get(self.life_key)
        except Exception as error:
            self.error = type(error).__name__
            raise
        self.error = None
        return self.life is None or stored == self.life

    def forget(self) -> None:
        """Leave the life: the next `load_positions` joins Redis's current one."""
        self.life = None

    async def positions(self) -> dict[str, int]:
        """The stored positions as they are, by ``{topic}:{partition}`` (one try)."""
        stored = await self.client.hgetall(self.positions_key)
        # The client answers bytes (no decode_responses); str only if configured so.
        return {_text(field): int(value) for field, value in stored.items()}

    async def read(self, customer_id: str) -> dict[str, Any] | None:
        raw = await self.client.hget(self.customer_key(customer_id), "grade")
        return None if raw is None else dict(orjson.loads(raw))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
