"""The Redis view against a real Redis: newest snapshot wins, sets follow the grade."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from streams.sinks.redis_view import RedisView, ViewLost


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
    assert await view.load_positions() == {}
    first = grade("c-3", "2026-01-01T00:00:00Z", 1, "regular", 0.2, "low")
    assert await view.write([first], {"grades:0": 5}) == 1
    assert await view.positions() == {"grades:0": 5}
    # A batch of snapshots already written still moves the position on.
    assert await view.write([first], {"grades:0": 9, "grades:1": 2}) == 0
    assert await view.load_positions() == {"grades:0": 9, "grades:1": 2}
    assert await view.read("c-3") == first


async def test_positions_of_another_life_are_never_stored(view: RedisView) -> None:
    """Redis lost its data (here: flushed) after the view loaded its positions: the
    snapshots are written, the positions not, and the view says so."""
    await view.load_positions()
    first = grade("c-4", "2026-01-01T00:00:00Z", 1, "regular", 0.2, "low")
    await view.write([first], {"grades:0": 5})
    await view.client.delete(view.life_key, view.positions_key, view.customer_key("c-4"))
    second = grade("c-4", "2026-01-02T00:00:00Z", 2, "regular", 0.2, "low")
    with pytest.raises(ViewLost):
        await view.write([second], {"grades:0": 6})
    assert await view.read("c-4") == second
    assert await view.positions() == {}
    # Loading joins the new life only once the view has left its own.
    with pytest.raises(ViewLost):
        await view.load_positions()
    view.forget()
    assert await view.load_positions() == {}
    assert await view.write([second], {"grades:0": 1}) == 0
    assert await view.positions() == {"grades:0": 1}


async def test_a_new_life_starts_with_no_positions(view: RedisView) -> None:
    """Positions with no life (left by a flush of the life alone, or an eviction) are not
    known to go with the snapshots: a new life drops them, and the view is rebuilt."""
    await view.client.hset(view.positions_key, "grades:0", 7)
    assert await view.load_positions() == {}
    assert await view.same_life()
