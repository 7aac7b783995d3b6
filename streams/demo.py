"""`make demo`: the whole pipeline, live, on the local broker and Redis.

1. starts the local Kafka and Redis (or uses KAFKA_BOOTSTRAP_SERVERS / REDIS_URL),
2. starts `gradestream worker` as a subprocess on demo topics of its own,
3. feeds it a simulated stream (`gradestream simulate`'s generator) through Kafka,
4. shows the output events as they arrive, then a summary and a few graded customers
   read back from Redis and over HTTP.

Nothing here is faked: every event goes through the broker and the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any, cast

import aiohttp
import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from streams.produce import produce_async
from streams.settings import Settings
from streams.simulate import generate
from streams.sinks.redis_view import RedisView
from streams.topics import admin_client, create_topics, expected_topics

REPO = Path(__file__).resolve().parents[1]
console = Console()

CUSTOMERS = int(os.environ.get("DEMO_CUSTOMERS", "300"))
DAYS = int(os.environ.get("DEMO_DAYS", "400"))
OUTPUT_TOPICS = ("tier-changes", "churn-risk", "lifecycle-changes", "tier-warnings")


def service(script: str, env_name: str) -> str:
    """The address from the environment, else a local one that already answers (say, from
    another checkout), else the local service, started now."""
    if address := os.environ.get(env_name):
        return address
    path = REPO / "deploy" / script
    running = subprocess.run([path, "status"], capture_output=True, text=True, check=False)
    if running.returncode == 0 and running.stdout.strip():
        return running.stdout.strip().splitlines()[-1]
    started = subprocess.run([path, "up"], capture_output=True, text=True, check=False)
    if started.returncode != 0:
        raise SystemExit(f"{script} up failed:\n{started.stderr}")
    return started.stdout.strip().splitlines()[-1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def describe(event: dict[str, object]) -> str:
    kind = event["type"]
    if kind == "tier_changed":
        return f"tier {event['previous_tier']} -> {event['tier']} ({event['direction']})"
    if kind == "lifecycle_changed":
        return f"lifecycle {event['previous_stage']} -> {event['stage']}"
    if kind == "tier_warning":
        return f"tier {event['tier']} falls to {event['downgrade_to']} at {event['downgrade_at']}"
    return f"churn {event['previous_band']} -> {event['band']} ({event['alert']})"


async def run() -> None:
    bootstrap = service("kafka/kafka.sh", "KAFKA_BOOTSTRAP_SERVERS")
    redis_url = service("redis/redis.sh", "REDIS_URL")
    run_id = uuid.uuid4().hex[:6]
    # A year of history is sent at once, as a backfill: on one topic, each customer's
    # events reach the worker in the order they happened (Kafka orders a partition, not
    # a set of topics; see docs/worker.md). Live, each kind has its own topic.
    events = f"demo-{run_id}-events"
    topic = dict.fromkeys(("orders", "complaints", "interactions"), events)
    topic |= {name: f"demo-{run_id}-{name}" for name in (*OUTPUT_TOPICS, "customer-grades")}
    prefix = f"gradestream-demo-{run_id}"
    web_port = free_port()
    datadir = REPO / ".local" / f"demo-{run_id}"
    datadir.mkdir(parents=True)
    console.print(f"Kafka at [bold]{bootstrap}[/], Redis at [bold]{redis_url}[/], run {run_id}")

    env = {
        **os.environ,
        "GRADESTREAM_APP_ID": f"demo-{run_id}",
        "GRADESTREAM_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "GRADESTREAM_REDIS_URL": redis_url,
        "GRADESTREAM_REDIS_KEY_PREFIX": prefix,
        # The simulated history spans a year: time follows the events, as in a backfill.
        "GRADESTREAM_CLOCK": "event",
        "GRADESTREAM_DATADIR": str(datadir),
        "GRADESTREAM_WEB_PORT": str(web_port),
        "GRADESTREAM_TOPIC_DEAD_LETTERS": f"demo-{run_id}-dlq",
        "GRADESTREAM_TOPIC_TICKS": f"demo-{run_id}-ticks",
    }
    for name, real in topic.items():
        env[f"GRADESTREAM_TOPIC_{name.upper().replace('-', '_')}"] = real
    await create_demo_topics(env)
    log_path = datadir / "worker.log"
    with log_path.open("wb") as log:
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "streams.cli", "worker", env=env, stdout=log, stderr=log
        )
    console.print(f"worker started (pid {worker.pid}); its log: {log_path}")
    try:
        records = list(generate(CUSTOMERS, DAYS, seed=42))
        console.print(
            f"simulating {CUSTOMERS} customers over {DAYS} days: {len(records):,} records"
        )
        rename = {name: topic[name] for name in ("orders", "complaints", "interactions")}
        started = time.perf_counter()
        sent = await produce_async(records, bootstrap, rename)
        console.print(
            f"produced {sum(sent.values()):,} records in {time.perf_counter() - started:.1f}s"
        )
        counts = await watch(bootstrap, [topic[name] for name in OUTPUT_TOPICS])
        await show_customers(redis_url, prefix, web_port)
        table = Table(title="output events seen")
        table.add_column("type")
        table.add_column("count", justify="right")
        for kind, count in sorted(counts.items()):
            table.add_row(kind, f"{count:,}")
        console.print(table)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(worker.wait(), 30)
        except TimeoutError:
            worker.kill()
        console.print("worker stopped")


async def create_demo_topics(env: dict[str, str]) -> None:
    """Create every topic of the run before anything produces to it, as `gradestream topics
    create` does: a topic the broker auto-creates on first use makes the clients log
    warnings (not found in the metadata, no leader yet) until its leader is elected."""
    prefix = "GRADESTREAM_"
    settings = Settings.model_validate(
        {k.removeprefix(prefix).lower(): v for k, v in env.items() if k.startswith(prefix)}
    )
    admin = admin_client(settings)
    await admin.start()
    try:
        specs = expected_topics(settings)
        results = await create_topics(admin, specs)
        await _leaders_elected(admin, [spec.name for spec in specs])
    finally:
        await admin.close()
    for failed in (r for r in results if r.outcome == "failed"):
        console.print(f"[red]topic {failed.name} not created:[/] {failed.message}")


async def _leaders_elected(admin: Any, names: list[str]) -> None:
    """Wait (a minute at most) until every partition of `names` has a leader: producing to
    a topic created a moment ago makes the client log and retry until then (more so on a
    broker just started)."""

    def led(topic: dict[str, Any]) -> bool:
        partitions = topic["partitions"]
        return (
            topic["error_code"] == 0
            and bool(partitions)
            and all(p["leader"] >= 0 for p in partitions)
        )

    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(60):
            # Polling: the broker tells no one when a leader is elected.
            while not all(led(t) for t in await admin.describe_topics(names)):  # noqa: ASYNC110
                await asyncio.sleep(0.2)


async def watch(
    bootstrap: str, topics: list[str], quiet_for: float = 8.0, first_within: float = 120.0
) -> Counter[str]:
    """Show output events live until none arrives for `quiet_for` seconds (the first may
    take up to `first_within`: on a broker just started, the worker's group forms first)."""
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    counts: Counter[str] = Counter()
    recent: list[str] = []
    last = time.monotonic()
    try:
        with Live(console=console, refresh_per_second=4) as live:
            while time.monotonic() - last < (quiet_for if counts else first_within):
                batch = await consumer.getmany(timeout_ms=500)
                for messages in batch.values():
                    for message in messages:
                        event = orjson.loads(message.value)
                        counts[event["type"]] += 1
                        recent.append(
                            f"{event['occurred_at']}  {event['customer_id']:>8}  {describe(event)}"
                        )
                        last = time.monotonic()
                table = Table(title=f"live output events ({sum(counts.values()):,} so far)")
                table.add_column("latest")
                for line in recent[-15:]:
                    table.add_row(line)
                live.update(table)
    finally:
        await consumer.stop()
    return counts


async def show_customers(redis_url: str, prefix: str, web_port: int) -> None:
    client = aioredis.from_url(redis_url)
    view = RedisView(client, prefix)
    try:
        # redis-py types the reply loosely; withscores=True gives (member, score) pairs.
        at_risk = cast(
            list[tuple[bytes, float]],
            await client.zrevrange(view.at_risk_key, 0, 4, withscores=True),
        )
        table = Table(title="most at risk (Redis sorted set)")
        for column in ("customer", "churn score", "tier", "lifecycle", "segment"):
            table.add_column(column)
        for member, score in at_risk:
            customer_id = member.decode()
            grade = await view.read(customer_id) or {}
            table.add_row(
                customer_id,
                f"{score:.2f}",
                str(grade.get("tier")),
                str(grade.get("lifecycle")),
                str(grade.get("segment")),
            )
        console.print(table)
        for tier in ("gold", "silver", "regular", "potential"):
            console.print(f"tier {tier}: {await client.scard(view.tier_key(tier))} customers")
        if at_risk:
            customer = at_risk[0][0].decode()
            url = f"http://127.0.0.1:{web_port}/customers/{customer}"
            async with aiohttp.ClientSession() as http, http.get(url) as response:
                body = await response.json()
            console.print(
                f"GET {url} -> {response.status}: rfm {body['rfm']['code']}, "
                f"churn {body['churn']['band']}"
            )
    finally:
        await client.aclose()


def main() -> None:
    asyncio.run(run())


if __name__ == "__main__":
    main()
