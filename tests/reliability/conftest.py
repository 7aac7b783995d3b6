"""Fixtures of the fault-injection runs: a one-topic deployment (so that outputs can be
compared with replay, see docs/worker.md "Event time across topics") whose workers carry
marker secrets, and a place to put each run's figures."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, TopicFactory
from tests.integration.support import Deployment, clean_redis, make_deployment

# Set as the Kafka SASL password of every worker these tests start: it must never show
# in a log. Against the PLAINTEXT test broker the SASL settings are parsed, not used.
SECRET_MARKER = "s3cret-MARKER-7f1c9a"  # noqa: S105 (a marker, no password)
FIGURES = REPO / ".local" / "reliability" / "figures.jsonl"


@pytest.fixture
async def deployment(
    kafka_bootstrap: str, redis_url: str, new_topic: TopicFactory, tmp_path: Path
) -> AsyncIterator[Deployment]:
    deployment = await make_deployment(
        kafka_bootstrap, redis_url, new_topic, tmp_path, one_topic=True
    )
    deployment.extra_env["GRADESTREAM_KAFKA_SASL_PASSWORD"] = SECRET_MARKER
    deployment.extra_env["GRADESTREAM_KAFKA_SASL_USERNAME"] = "reliability"
    yield deployment
    await clean_redis(redis_url, deployment.prefix)


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """A dict the test fills with its measurements; printed and appended to
    .local/reliability/figures.jsonl (docs/reliability.md quotes them)."""
    found: dict[str, Any] = {}
    started = time.monotonic()
    yield found
    found = {"test": request.node.nodeid, "seconds": round(time.monotonic() - started, 1)} | found
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    with FIGURES.open("a") as out:
        out.write(json.dumps(found) + "\n")
    print("\nFIGURES", json.dumps(found))
