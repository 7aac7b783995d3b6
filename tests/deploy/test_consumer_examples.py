"""docs/examples/ (included in docs/consumers.md) run against the real broker and Redis.

The HTTP example runs against a small aiohttp server that answers like a worker
(GET /customers/{id}: a snapshot or 404), not against a full worker: the worker's own
HTTP route is covered by tests/integration/test_worker.py.
"""

from __future__ import annotations

import asyncio
import copy
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiokafka import AIOKafkaProducer

from streams.contracts import validate_output
from streams.sinks.redis_view import RedisView
from tests.conftest import REPO, TopicFactory
from tests.integration.support import free_port

pytestmark = pytest.mark.integration

EXAMPLES = REPO / "docs" / "examples"


def _examples(schema: str) -> list[dict[str, Any]]:
    path = REPO / "schemas" / "examples" / f"{schema}.valid.jsonl"
    return [orjson.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def _run(script: str, *args: str, within: float = 60) -> list[dict[str, Any]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLES / script),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), within)
    assert proc.returncode == 0, err.decode()
    return [orjson.loads(line) for line in out.splitlines() if line.strip()]


async def test_marketing_automation_consumes_tier_changes_once_each(
    kafka_bootstrap: str, new_topic: TopicFactory
) -> None:
    topic = await new_topic("tier-changes", partitions=2)
    changes = _examples("tier-changes")[:3]
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        # The second change is delivered twice (a re-publish after a worker restart).
        for change in [changes[0], changes[1], changes[1], changes[2]]:
            key = change["customer_id"].encode()
            await producer.send_and_wait(topic, orjson.dumps(change), key=key)
    finally:
        await producer.stop()

    group = f"test-marketing-{uuid.uuid4().hex[:8]}"
    args = ("--bootstrap", kafka_bootstrap, "--topic", topic, "--group", group)
    lines = await _run("tier_changes_consumer.py", *args, "--exit-when-idle", "3")
    assert [line["event_id"] for line in lines] == [c["event_id"] for c in changes]
    assert lines[0]["from"] == changes[0]["previous_tier"]
    assert lines[0]["to"] == changes[0]["tier"]
    # Offsets were committed: the same group reads nothing again.
    assert await _run("tier_changes_consumer.py", *args, "--exit-when-idle", "2") == []


def _grade(customer_id: str, score: float, band: str, tier: str) -> dict[str, Any]:
    grade = copy.deepcopy(_examples("customer-grades")[1])
    grade["customer_id"] = customer_id
    grade["tier"] = tier
    grade["churn"] = {
        "score": score,
        "band": band,
        "reasons": [] if band == "low" else [{"code": "recency", "message": "Last order"}],
    }
    validate_output("customer-grades", grade)
    return grade


async def test_retention_tool_reads_the_at_risk_set(redis_url: str) -> None:
    prefix = f"test-retention-{uuid.uuid4().hex[:8]}"
    client = aioredis.from_url(redis_url)
    view = RedisView(client, prefix)
    try:
        await view.write(
            [
                _grade("c-high", 0.62, "high", "gold"),
                _grade("c-critical", 0.91, "critical", "silver"),
                _grade("c-medium", 0.35, "medium", "regular"),
                _grade("c-low", 0.05, "low", "potential"),
            ]
        )
        lines = await _run(
            "at_risk_report.py", "--redis-url", redis_url, "--prefix", prefix, "--min-score", "0.3"
        )
        assert [line["customer_id"] for line in lines] == ["c-critical", "c-high", "c-medium"]
        assert lines[0]["band"] == "critical"
        assert lines[0]["tier"] == "silver"
        assert lines[0]["reasons"] == ["recency"]
        top = await _run("at_risk_report.py", "--redis-url", redis_url, "--prefix", prefix)
        assert [line["customer_id"] for line in top] == ["c-critical", "c-high"]
    finally:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


def _needs(spend: float, before: str) -> dict[str, Any]:
    return {"spend": spend, "orders": None, "single_order": None, "before": before}


async def test_retention_mail_reminds_each_warned_customer_once(
    kafka_bootstrap: str, new_topic: TopicFactory
) -> None:
    topic = await new_topic("tier-warnings", partitions=2)
    warnings = _examples("tier-warnings")
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for warning in [warnings[0], warnings[0], warnings[1]]:  # the first re-delivered
            key = warning["customer_id"].encode()
            await producer.send_and_wait(topic, orjson.dumps(warning), key=key)
    finally:
        await producer.stop()

    group = f"test-retention-mail-{uuid.uuid4().hex[:8]}"
    args = ("--bootstrap", kafka_bootstrap, "--topic", topic, "--group", group)
    lines = await _run("tier_warnings_consumer.py", *args, "--exit-when-idle", "3")
    assert sorted(line["event_id"] for line in lines) == sorted(w["event_id"] for w in warnings)
    by_customer = {line["customer_id"]: line for line in lines}
    assert by_customer["cust-1"]["subject"] == "Keep your silver status"
    assert by_customer["cust-1"]["body"] == (
        "Your silver status becomes potential on 2025-01-30. To keep it, "
        "spend 50,000.00 more before then."
    )
    assert "place 1 more order(s) or place one order of 3,000.00" in by_customer["cust-2"]["body"]
    assert await _run("tier_warnings_consumer.py", *args, "--exit-when-idle", "2") == []


@pytest.fixture
async def grades_server() -> AsyncIterator[str]:
    """Answers GET /customers/{id} like a worker: the snapshot, or 404."""
    gold = _grade("cust-gold", 0.1, "low", "gold")
    gold["progress"] = {
        "next": None,
        "held": {
            "tier": "gold",
            "downgrade_at": "2025-01-30T00:00:00Z",
            "downgrade_to": "silver",
            "needs": _needs(12_000.5, "2025-01-30T00:00:00Z"),
        },
    }
    silver = _grade("cust-silver", 0.1, "low", "silver")
    silver["progress"] = {
        "next": {"tier": "gold", "needs": _needs(120.0, "2024-03-03T00:00:00Z")},
        "held": {
            "tier": "silver",
            "downgrade_at": "2024-04-02T00:00:00Z",
            "downgrade_to": "regular",
            "needs": _needs(50_000.0, "2024-04-02T00:00:00Z"),
        },
    }
    for grade in (gold, silver):
        validate_output("customer-grades", grade)
    known = {"cust-gold": gold, "cust-silver": silver}

    async def customer(request: web.Request) -> web.Response:
        grade = known.get(request.match_info["customer_id"])
        if grade is None:
            return web.json_response({"error": "no customer"}, status=404)
        return web.Response(body=orjson.dumps(grade), content_type="application/json")

    app = web.Application()
    app.router.add_get("/customers/{customer_id}", customer)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_loyalty_trigger_looks_customers_up_over_http(grades_server: str) -> None:
    (gold,) = await _run("loyalty_lookup.py", "--url", grades_server, "cust-gold")
    assert gold == {
        "customer_id": "cust-gold",
        "tier": "gold",
        "perk": "free express shipping + 10% off",
        "keep": "gold: spend 12,000.50 more before 2025-01-30",
    }
    (silver,) = await _run("loyalty_lookup.py", "--url", grades_server, "cust-silver")
    assert silver["next"] == "gold: spend 120.00 more before 2024-03-03"
    assert silver["keep"] == "silver: spend 50,000.00 more before 2024-04-02"
    (unknown,) = await _run("loyalty_lookup.py", "--url", grades_server, "nobody")
    assert unknown == {"customer_id": "nobody", "tier": None, "perk": "welcome offer"}
    closed = f"http://127.0.0.1:{free_port()}"
    (down,) = await _run("loyalty_lookup.py", "--url", closed, "cust-gold")
    assert down["perk"] == "none"
    assert "error" in down
