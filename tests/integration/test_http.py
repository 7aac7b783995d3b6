"""The worker's HTTP port serves gradestream's routes only, on the configured host."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import orjson
import pytest

from streams.produce import produce_async
from streams.simulate import SimRecord
from tests.conftest import TopicFactory
from tests.integration.support import Deployment, clean_redis, make_deployment, wait_for

# A loopback address other than 127.0.0.1 (Linux routes all of 127/8 to lo): a server
# listening on every interface would answer on 127.0.0.1 too.
HOST = "127.0.0.2"


@pytest.fixture
async def deployment(
    kafka_bootstrap: str, redis_url: str, new_topic: TopicFactory, tmp_path: Path
) -> AsyncIterator[Deployment]:
    deployment = await make_deployment(
        kafka_bootstrap, redis_url, new_topic, tmp_path, one_topic=True
    )
    deployment.extra_env["GRADESTREAM_WEB_HOST"] = HOST
    yield deployment
    await clean_redis(redis_url, deployment.prefix)


async def status(http: aiohttp.ClientSession, url: str) -> int:
    async with http.get(url) as response:
        return response.status


async def test_only_gradestreams_routes_are_served_on_the_configured_host(
    deployment: Deployment,
) -> None:
    customer = f"web-{uuid.uuid4().hex[:6]}"
    order = {
        "event_id": "e-1",
        "customer_id": customer,
        "occurred_at": "2024-03-01T10:00:00Z",
        "type": "order_placed",
        "order_id": "o-1",
        "amount": 120.0,
        "currency": "USD",
    }
    record = SimRecord("orders", customer.encode(), orjson.dumps(order))
    await produce_async([record], deployment.kafka, {"orders": deployment.topics["orders"]})
    base = f"http://{HOST}:{deployment.web_port}"
    log_path = deployment.datadir / "worker.log"
    async with deployment.worker("event") as worker, aiohttp.ClientSession() as http:

        async def graded() -> bool:
            try:
                return await status(http, f"{base}/customers/{customer}") == 200
            except aiohttp.ClientConnectionError:
                return False

        await wait_for(graded, within=90, worker=worker, every=0.5)
        assert await status(http, f"{base}/health") == 200
        async with http.get(f"{base}/metrics") as response:
            assert "gradestream_events_in_total" in await response.text()

        # faust's own views: stored state, a progress marker, the cluster, the index.
        marker = f"%00done:{deployment.topics['orders']}:0"
        for path in (
            f"/table/customers/{customer}/",
            f"/table/customers/{marker}/",
            "/table/",
            "/router/",
            "/",
            "/graph/",
            "/stats/",
        ):
            assert await status(http, base + path) == 404, path

        # Not on every interface: nothing listens on 127.0.0.1 at the port.
        with pytest.raises(aiohttp.ClientConnectionError):
            await status(http, f"http://127.0.0.1:{deployment.web_port}/health")

        # An 8 KB+ URL is the client's error: refused, in one line of the log at most.
        for _ in range(3):
            assert await status(http, f"{base}/customers/{'x' * 9000}") in (400, 414, 431)
        await asyncio.sleep(0.5)
        assert await status(http, f"{base}/health") == 200
    log = log_path.read_text()
    assert "Traceback" not in log, log[-3000:]
    assert "Error handling request" not in log
    assert 1 <= log.count("refused a bad HTTP request") <= 3  # one line per request
