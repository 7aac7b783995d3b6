"""Helpers for integration tests: reading topics, and Faust workers as subprocesses."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.app.alignment import aligned
from streams.core.policy import Policy, load_policy
from streams.replay import replay_file
from streams.schedule import partition_of
from streams.simulate import SimRecord, generate, write_jsonl
from streams.sinks.redis_view import RedisView
from tests.conftest import REPO, TopicFactory

Record = tuple[bytes | None, bytes]


async def consume(bootstrap: str, topic: str, count: int, within: float = 60.0) -> list[Record]:
    """Read `count` records from the start of `topic`, or fail after `within` seconds."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    got: list[Record] = []
    try:
        async with asyncio.timeout(within):
            async for record in consumer:
                assert record.value is not None
                got.append((record.key, record.value))
                if len(got) == count:
                    break
    finally:
        await consumer.stop()
    return got


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def subprocess_worker(
    argv: list[str], env: Mapping[str, str], log_path: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    """Run a Faust worker as a subprocess (mode.Worker cannot run in a thread); SIGTERM it
    after. Its output goes to `log_path`, which a failing test can read."""
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *argv,
            env=dict(env),
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            cwd=REPO,
        )
        try:
            yield proc
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), 30)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()


def faust_worker(
    script: Path, datadir: Path, env: Mapping[str, str]
) -> AbstractAsyncContextManager[asyncio.subprocess.Process]:
    """A Faust app script run as `script --datadir DIR worker --web-port N`."""
    argv = [str(script), "--datadir", str(datadir), "worker"]
    argv += ["--web-port", str(free_port()), "--web-host", "127.0.0.1"]
    return subprocess_worker(argv, env, datadir / "worker.log")


class PrivateRedis:
    """A redis-server of a test's own on a free port, so that stopping it disturbs no
    other test; with a password, and with an append-only file if `keep` (a stop and
    start then keeps the data, as a real outage would; else it comes back empty, as a
    restarted cache often does)."""

    def __init__(self, directory: Path, password: str, keep: bool) -> None:
        self.dir = directory
        self.dir.mkdir()
        self.password = password
        self.keep = keep
        self.port = free_port()
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
            "--requirepass", self.password, "--dir", str(self.dir), "--save", "",
            "--appendonly", "yes" if self.keep else "no",
            "--logfile", str(self.dir / "redis.log"),
        )  # fmt: skip

        async def answers() -> bool:
            client = aioredis.from_url(self.url)
            try:
                return bool(await client.ping())
            except Exception:
                return False
            finally:
                await client.aclose()

        await wait_for(answers, 10)

    async def stop(self, kill: bool = False) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            await self.proc.wait()


@asynccontextmanager
async def private_redis_server(
    directory: Path, password: str, keep: bool
) -> AsyncIterator[PrivateRedis]:
    """A started `PrivateRedis`, stopped after."""
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed (deploy/redis/redis.sh up installs it)")
    server = PrivateRedis(directory, password, keep)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


# -- a gradestream worker deployment: unique topics, Redis prefix, datadir, web port ------

INPUTS = ("orders", "complaints", "interactions")
OUTPUTS = ("tier-changes", "churn-risk", "lifecycle-changes", "tier-warnings")
OUTPUT_TYPE = {
    "tier-changes": "tier_changed",
    "churn-risk": "churn_risk_changed",
    "lifecycle-changes": "lifecycle_changed",
    "tier-warnings": "tier_warning",
}


@dataclass
class Deployment:
    """One worker's unique topic names, Redis prefix and environment.

    `replica(n)` is another worker of the same app (same app id, topics and prefix) with a
    datadir and web port of its own, as a second machine would run it.
    """

    kafka: str
    redis_url: str
    datadir: Path
    topics: dict[str, str]
    web_port: int = field(default_factory=free_port)
    prefix: str = field(default_factory=lambda: f"test-{uuid.uuid4().hex[:8]}")
    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self, clock: str = "event") -> dict[str, str]:
        env = {
            **os.environ,
            "GRADESTREAM_APP_ID": f"{self.prefix}-app",
            "GRADESTREAM_KAFKA_BOOTSTRAP_SERVERS": self.kafka,
            "GRADESTREAM_REDIS_URL": self.redis_url,
            "GRADESTREAM_REDIS_KEY_PREFIX": self.prefix,
            "GRADESTREAM_CLOCK": clock,
            "GRADESTREAM_DATADIR": str(self.datadir),
            "GRADESTREAM_WEB_PORT": str(self.web_port),
            "GRADESTREAM_SWEEP_INTERVAL_SECONDS": "0.5",
        }
        for topic, name in self.topics.items():
            env[f"GRADESTREAM_TOPIC_{topic.upper().replace('-', '_')}"] = name
        env.update(self.extra_env)
        return env

    def worker(self, clock: str = "event", log_name: str = "worker.log") -> Any:
        argv = ["-m", "streams.cli", "worker", "--loglevel", "info"]
        return subprocess_worker(argv, self.env(clock), self.datadir / log_name)

    def replica(self, n: int) -> Deployment:
        datadir = self.datadir.with_name(f"{self.datadir.name}-{n}")
        datadir.mkdir(exist_ok=True)
        return replace(self, datadir=datadir, web_port=free_port())

    def logs(self) -> list[Path]:
        return sorted(self.datadir.glob("*.log"))


async def make_deployment(
    kafka: str,
    redis_url: str,
    new_topic: TopicFactory,
    tmp_path: Path,
    one_topic: bool,
    **input_configs: str,
) -> Deployment:
    """Unique input topics (4 partitions; one for all kinds, or one per kind; with
    `input_configs`), the customer-grades topic, and names for the topics the worker
    declares itself.

    customer-grades is created here, compacted, as `gradestream topics create` would: the
    trials watch it from before the worker starts, and a consumer's metadata request for a
    missing topic makes the broker auto-create it. The worker's producer then never saw a
    leader for it (docs/reliability.md, "Open defects")."""
    if one_topic:
        events = await new_topic("events", partitions=4, **input_configs)
        topics = dict.fromkeys(INPUTS, events)
    else:
        topics = {name: await new_topic(name, partitions=4, **input_configs) for name in INPUTS}
    topics["customer-grades"] = await new_topic(
        "customer-grades", partitions=4, **{"cleanup.policy": "compact"}
    )
    unique = uuid.uuid4().hex[:8]
    for name in (*OUTPUTS, "dead-letters", "ticks"):
        topics[name] = f"test-{name}-{unique}"  # the worker declares these itself
    deployment = Deployment(kafka, redis_url, tmp_path / "worker", topics)
    deployment.datadir.mkdir()
    return deployment


async def clean_redis(redis_url: str, prefix: str) -> None:
    client = aioredis.from_url(redis_url)
    try:
        keys = [k async for k in client.scan_iter(f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


# -- inputs and the reference: replay -----------------------------------------------------


def keyed(records: Iterable[SimRecord]) -> list[SimRecord]:
    """Records as a well-behaved producer sends them: keyed by customer_id.

    The simulator's key faults (keyless, mismatched) are left out here: a file has no
    keys, so replay cannot see them; test_bad_records covers them.
    """
    out = []
    for topic, key, value in records:
        try:
            body = orjson.loads(value)
            customer = body.get("customer_id") if isinstance(body, dict) else None
        except orjson.JSONDecodeError:
            customer = None
        if isinstance(customer, str):
            if key is not None and key != customer.encode():
                continue
            key = customer.encode()
        out.append(SimRecord(topic, key, value))
    return out


def simulated(customers: int, days: int, seed: int) -> list[SimRecord]:
    return keyed(generate(customers, days, seed))


def in_worker_order(records: Iterable[SimRecord], partitions: int = 4) -> list[SimRecord]:
    """The records in the order a worker grades them from a backlog on the three input
    topics (`streams.app.alignment.aligned`): what replay must read to give its outputs.
    A keyless record (no effect on any state) is put on partition 0."""

    def partition(record: SimRecord) -> int:
        return partition_of(record.key.decode(), partitions) if record.key else 0

    return aligned(((r.topic, partition(r), r.value, r) for r in records), INPUTS)


def replay(
    records: list[SimRecord], tmp: Path, partitions: int = 4, policy: Policy | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Replay's output events and final grades for these records, with stream time kept
    per partition as a worker on `partitions` partitions keeps it (under `policy`, by
    default the packaged one)."""
    source = tmp / "in.jsonl"
    write_jsonl(records, source)
    out, snap, dlq = tmp / "out.jsonl", tmp / "snap.jsonl", tmp / "dlq.jsonl"
    the_policy = load_policy(None) if policy is None else policy
    replay_file(source, the_policy, out, snap, dlq, partitions=partitions)
    outputs = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    grades = {g["customer_id"]: g for g in map(orjson.loads, snap.read_bytes().splitlines())}
    return outputs, grades


# -- reading what the worker wrote --------------------------------------------------------


async def read_topic(
    kafka: str,
    topic: str,
    until: Any,
    within: float = 120.0,
    worker: asyncio.subprocess.Process | None = None,
) -> list[dict[str, Any]]:
    """Read `topic` from the start until `until(records)` holds, for at most `within` s
    (then return what came); fail at once if `worker` dies."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(within):
            while not until(records):
                assert worker is None or worker.returncode is None, "the worker died"
                batch = await consumer.getmany(timeout_ms=500)
                for messages in batch.values():
                    records.extend(orjson.loads(m.value) for m in messages)
    except TimeoutError:
        pass
    finally:
        await consumer.stop()
    return records


async def read_all(kafka: str, topic: str) -> list[dict[str, Any]]:
    """Everything in `topic` up to its current end (empty if it does not exist yet)."""
    return [orjson.loads(value) for value in await read_raw(kafka, topic)]


async def read_raw(kafka: str, topic: str) -> list[bytes]:
    """The values in `topic` up to its current end, as bytes (empty if no such topic)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in partitions]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records: list[bytes] = []
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            batch = await consumer.getmany(timeout_ms=500)
            for messages in batch.values():
                records.extend(m.value for m in messages if m.value is not None)
        return records
    finally:
        await consumer.stop()


async def end_offsets(kafka: str, topic: str) -> dict[str, int]:
    """The topic's end offsets, by "{topic}:{partition}" as the view's positions name them."""
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        ends = await consumer.end_offsets(tps)
        return {f"{tp.topic}:{tp.partition}": offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


def latest(grades: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The newest grade per customer, as a compacted topic keeps it."""
    out: dict[str, dict[str, Any]] = {}
    for g in grades:
        old = out.get(g["customer_id"])
        if old is None or (g["as_of"], g["seq"]) >= (old["as_of"], old["seq"]):
            out[g["customer_id"]] = g
    return out


def graded_events(grades: list[dict[str, Any]]) -> int:
    """Events accepted so far: the sum over customers of the newest snapshot's seq."""
    return sum(g["seq"] for g in latest(grades).values())


async def metric(deployment: Deployment, name: str) -> float:
    """A counter's value from the worker's /metrics (0 while its web server starts)."""
    url = f"http://127.0.0.1:{deployment.web_port}/metrics"
    try:
        async with aiohttp.ClientSession() as http, http.get(url) as response:
            text = await response.text()
    except aiohttp.ClientConnectionError:
        return 0.0
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


async def redis_grades(
    redis_url: str, prefix: str, customers: Iterable[str]
) -> dict[str, dict[str, Any] | None]:
    """The grade the Redis view holds for each customer (None when it has none)."""
    view = RedisView(aioredis.from_url(redis_url), prefix)
    try:
        return {c: await view.read(c) for c in customers}
    finally:
        await view.client.aclose()


async def redis_converges(
    redis_url: str, prefix: str, expected: Mapping[str, Any], within: float = 60.0
) -> dict[str, dict[str, Any] | None]:
    """Poll the Redis view until it holds exactly `expected`; return what it holds last."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        stored = await redis_grades(redis_url, prefix, expected)
        if stored == expected or asyncio.get_running_loop().time() > deadline:
            return stored
        await asyncio.sleep(0.5)


def mismatch(got: Mapping[str, Any], want: Mapping[str, Any]) -> str:
    """A short account of how two grade maps differ, for a failing assertion."""
    missing = sorted(set(want) - set(got))
    differ = sorted(c for c in set(want) & set(got) if got[c] != want[c])
    lines = [f"{len(missing)} customers missing, {len(differ)} differ, of {len(want)}"]
    for c in differ[:3]:
        if got[c] is None:
            lines.append(f"{c}: worker None")
            continue
        keys = sorted(k for k in want[c] if want[c].get(k) != got[c].get(k))
        lines += [f"{c}.{k}: worker {got[c].get(k)!r} != replay {want[c].get(k)!r}" for k in keys]
    return "\n".join(lines)


# -- fault-injection helpers (tests/reliability) ------------------------------------------


class GradedWatch:
    """Events a worker has accepted so far, seen from outside (`graded_events` of the
    grades topic, read on as it grows): a worker's progress in input events. Grade
    records would not do: the worker sends one per customer per batch, not per event."""

    def __init__(self, kafka: str, topic: str) -> None:
        self.consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=kafka, enable_auto_commit=False, auto_offset_reset="earliest"
        )
        self.grades: dict[str, dict[str, Any]] = {}

    async def __aenter__(self) -> GradedWatch:
        await self.consumer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.consumer.stop()

    async def total(self) -> int:
        while fetched := await self.consumer.getmany(timeout_ms=0):
            new = [orjson.loads(r.value) for records in fetched.values() for r in records]
            self.grades = latest([*self.grades.values(), *new])
        return sum(g["seq"] for g in self.grades.values())


async def wait_for(
    condition: Any,
    within: float,
    worker: asyncio.subprocess.Process | None = None,
    every: float = 0.1,
) -> float:
    """Poll the async `condition()` until true; return the seconds it took. Fail when
    `within` passes or `worker` dies."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while not await condition():
        assert worker is None or worker.returncode is None, "the worker died"
        assert loop.time() - started < within, f"not within {within} s"
        await asyncio.sleep(every)
    return loop.time() - started


async def healthy(port: int) -> bool:
    """Whether the worker on `port` answers /health with 200: its partitions recovered."""
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}/health") as response,
        ):
            return response.status == 200
    except aiohttp.ClientConnectionError:
        return False


async def http_grades(port: int, customers: Iterable[str], within: float = 60) -> dict[str, Any]:
    """GET /customers/{id} from the worker on `port`, for each customer (an error as its
    status and body); a 503 (the worker is rebalancing) is asked again, as a client
    would, for up to `within` s."""
    out: dict[str, Any] = {}
    deadline = asyncio.get_running_loop().time() + within
    async with aiohttp.ClientSession() as http:
        for customer in customers:
            url = f"http://127.0.0.1:{port}/customers/{customer}"
            while True:
                async with http.get(url) as response:
                    status = response.status
                    body = await response.json(content_type=None)
                    out[customer] = body if status == 200 else {"status": status, "body": body}
                if status != 503 or asyncio.get_running_loop().time() > deadline:
                    break
                await asyncio.sleep(0.5)
    return out


async def read_outputs(deployment: Deployment) -> list[dict[str, Any]]:
    """Every output event in the three output topics, duplicates included."""
    outputs: list[dict[str, Any]] = []
    for name in OUTPUTS:
        outputs += await read_all(deployment.kafka, deployment.topics[name])
    return outputs


async def read_outputs_of(
    deployment: Deployment, worker: Any, expected: Iterable[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Each output topic read until it holds as many distinct events as `expected` has of
    its type (30 s at most each, failing early if `worker` dies)."""
    expected = list(expected)
    outputs: list[dict[str, Any]] = []
    for name in OUTPUTS:
        want = sum(1 for o in expected if o["type"] == OUTPUT_TYPE[name])
        outputs += await read_topic(
            deployment.kafka,
            deployment.topics[name],
            lambda got, want=want: len({o["event_id"] for o in got}) >= want,
            within=30,
            worker=worker,
        )
    return outputs


def duplicates(events: Iterable[dict[str, Any]]) -> int:
    """Copies beyond the first, counted by event_id."""
    seen: set[str] = set()
    extra = 0
    for event in events:
        if event["event_id"] in seen:
            extra += 1
        seen.add(event["event_id"])
    return extra


def free_texts(records: Iterable[SimRecord]) -> set[str]:
    """The complaint free texts these records carry (which must never be stored)."""
    texts: set[str] = set()
    for record in records:
        try:
            body = orjson.loads(record.value)
        except orjson.JSONDecodeError:
            continue
        if isinstance(body, dict) and isinstance(body.get("text"), str):
            texts.add(body["text"])
    return texts


async def leaks(deployment: Deployment, needles: Iterable[str]) -> dict[str, list[str]]:
    """Where any of `needles` shows: the worker logs, the output, grade and tick topics,
    and the deployment's Redis keys. The dead-letter topic is left out on purpose: it
    keeps a refused record's original bytes (base64), by contract."""
    wanted = [n.encode() for n in needles]
    found: dict[str, list[str]] = {}

    def look(where: str, parts: Iterable[Any]) -> None:
        blob = b"\n".join(p if isinstance(p, bytes) else str(p).encode() for p in parts)
        for needle in wanted:
            if needle in blob:
                found.setdefault(needle.decode(), []).append(where)

    for path in deployment.logs():
        look(str(path), [path.read_bytes()])
    for name in (*OUTPUTS, "customer-grades", "ticks"):
        look(name, await read_raw(deployment.kafka, deployment.topics[name]))
    client = aioredis.from_url(deployment.redis_url)
    try:
        async for key in client.scan_iter(f"{deployment.prefix}:*"):
            kind = await client.type(key)
            if kind == b"hash":
                look(f"redis {key!r}", (await client.hgetall(key)).values())
            elif kind == b"set":
                look(f"redis {key!r}", await client.smembers(key))
            elif kind == b"zset":
                look(f"redis {key!r}", await client.zrange(key, 0, -1))
    finally:
        await client.aclose()
    return found
