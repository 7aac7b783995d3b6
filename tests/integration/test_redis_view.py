"""The Redis view against a real Redis: newest snapshot wins, sets follow the grade."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from streams.sinks.redis_view import RedisView


def grade(
    customer_id: str, as_of: str, seq: int, tier: str, score: float, band: str
) -> dict[str, Any]:
    return {
        "customer_id": customer_id,
        "as_of": as_of,
        "seq": seq,
        "tier": tier,
        "segment": "Loyal",
        "lifecycle": "active",
        "churn": {"score": score, "band": band, "reasons": []},
    }


@pytest.fixture
async def view(redis_url: str) -> AsyncIterator[RedisView]:
    client = aioredis.from_url(redis_url)
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    try:
        yield RedisView(client, prefix)
    finally:
        keys = [k async for k in client.scan_iter(f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def test_newer_snapshot_wins_and_older_is_ignored(view: RedisView) -> None:
    first = grade("c-1", "2026-01-01T00:00:00Z", 3, "regular", 0.2, "low")
    newer = grade("c-1", "2026-02-01T00:00:00Z", 5, "silver", 0.7, "high")
    stale = grade("c-1", "2026-01-15T00:00:00Z", 4, "gold", 0.1, "low")
    assert await view.write([first]) == 1
    assert await view.write([newer, stale]) == 1
    assert await view.read("c-1") == newer
    client = view.client
    assert await client.smembers(view.tier_key("silver")) == {b"c-1"}
    assert await client.smembers(view.tier_key("regular")) == set()
    assert await client.zscore(view.at_risk_key, "c-1") == pytest.approx(0.7)
    # Re-delivering the same snapshot changes nothing.
    assert await view.write([newer]) == 0


async def test_low_band_leaves_the_at_risk_set(view: RedisView) -> None:
    await view.write([grade("c-2", "2026-01-01T00:00:00Z", 1, "potential", 0.8, "critical")])
    assert await view.client.zscore(view.at_risk_key, "c-2") == pytest.approx(0.8)
    await view.write([grade("c-2", "2026-01-02T00:00:00Z", 2, "regular", 0.1, "low")])
    assert await view.client.zscore(view.at_risk_key, "c-2") is None
    assert await view.read("c-3") is None


async def test_positions_are_written_with_the_batch(view: RedisView) -> None:
    assert await view.positions() == {}
    first = grade("c-3", "2026-01-01T00:00:00Z", 1, "regular", 0.2, "low")
    assert await view.write([first], {"grades:0": 5}) == 1
    assert await view.positions() == {"grades:0": 5}
    # A batch of snapshots already written still moves the position on.
    assert await view.write([first], {"grades:0": 9, "grades:1": 2}) == 0
    assert await view.positions() == {"grades:0": 9, "grades:1": 2}
    assert await view.read("c-3") == first
