"""The streaming worker on the real local broker: throughput, peers, latency, sweep, memory.

One run, on the local single-node Kafka and Redis of deploy/ (kafka.sh, redis.sh): a
broker and a Redis of the run's own, on free ports with their data under
.local/bench/services (the jars shared with `make kafka-up`'s), started for the run and
stopped after it, so that test sessions starting and stopping the shared ones neither
disturb the figures nor are disturbed. With KAFKA_BOOTSTRAP_SERVERS and REDIS_URL set,
those are used instead and nothing is started. Every topic and app id is unique to the
run (prefix bench-<hex>) and the run's topics are deleted at the end:

1. drain: a backlog of simulated events (streams.simulate, every record keyed by its
   customer as a well-behaved producer sends it; the simulator's duplicates, late and
   malformed records kept) is produced to three input topics (4 partitions each), then
   drained by `gradestream worker` (CLOCK=event, as a backfill runs), by a bare aiokafka
   loop (bench/peers/bare_aiokafka.py: consume, orjson, produce one record per input),
   by the same work in the worker's faust shape (bench/peers/faust_floor.py: agents,
   take_events batches, faust's producer; what faust costs before any grading) and by
   a Quix Streams app (bench/peers/quix_rfm.py: a per-customer RFM update in
   Quix's RocksDB state, one record per input), one after the other. Sustained
   events/s and CPU µs per event (the process's user+system time, /proc via psutil)
   are taken between the first poll that sees progress and the end;
2. latency: a fresh worker fed at a steady 1k and then 5k events/s; produce-to-output
   latency is the output event's Kafka timestamp minus the timestamp its causing input
   record was produced with (cause.event_id), p50/p99 per rate;
3. customers: for 10k, 100k and 1M customers, a fresh worker whose table changelog is
   pre-filled with that many realistic states (states of a replayed simulation, cloned
   under new ids) recovers them; then RSS and RocksDB size per customer, the time to
   recover and index, the time steps of 1% of the customers (clock events move each
   partition's event time to the 1% quantile of due times), and the throughput on a
   backlog of events for existing customers.

    .venv/bin/python bench/stream_bench.py                       # full run (~30 min)
    .venv/bin/python bench/stream_bench.py --quick               # a small run for development
    .venv/bin/python bench/stream_bench.py --write-docs          # and update docs/benchmarks.md

Prints the figures, writes bench/results/stream_bench.json (or stream_bench-quick.json)
and a PNG plot beside it. The Quix peer runs from its own virtualenv,
.local/bench/quix-venv (`make bench` creates it): quixstreams pins pydantic below the
project's pin, so it cannot share .venv.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import os
import platform
import random
import shutil
import signal
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import aiohttp
import orjson
import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

REPO: Final = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere, without installing

# bench/ is on sys.path as the script's own folder.
from replay_bench import timed_replay  # noqa: E402

from streams.core.state import encode  # noqa: E402
from streams.core.timefmt import format_rfc3339  # noqa: E402
from streams.schedule import partition_of  # noqa: E402
from streams.simulate import SimConfig, SimRecord, generate, write_jsonl  # noqa: E402

# Set by services() for the run.
KAFKA = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "")
REDIS = os.environ.get("REDIS_URL", "")
CACHE: Final = REPO / ".local" / "bench"
QUIX_PYTHON: Final = CACHE / "quix-venv" / "bin" / "python"
# The drain's peers, after the worker: the Python limit, faust's own floor, a peer product.
PEERS: Final = ("bare", "faust", "quix")
RESULTS: Final = REPO / "bench" / "results"
DOCS: Final = REPO / "docs" / "benchmarks.md"
BEGIN: Final = "<!-- stream-bench:begin (written by bench/stream_bench.py --write-docs) -->"
END: Final = "<!-- stream-bench:end -->"
PARTITIONS: Final = 4
INPUTS: Final = ("orders", "complaints", "interactions")
OUTPUTS: Final = ("tier-changes", "churn-risk", "lifecycle-changes")
RUN: Final = f"bench-{uuid.uuid4().hex[:8]}"
POLL: Final = 0.25
PHASES: Final = ("drain", "latency", "customers")


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


# -- records ----------------------------------------------------------------------------


def keyed(records: Iterable[SimRecord]) -> Iterator[SimRecord]:
    """Every record keyed by its body's customer_id, as a well-behaved producer sends it
    (the simulator's keyless and mismatched keys are faults of a bad producer); a body
    without one (malformed) is keyed b"unknown", so every peer can key its state."""
    for topic, _key, value in records:
        try:
            body = orjson.loads(value)
            customer = body.get("customer_id") if isinstance(body, dict) else None
        except orjson.JSONDecodeError:
            customer = None
        key = customer.encode() if isinstance(customer, str) else b"unknown"
        yield SimRecord(topic, key, value)


_HEAD: Final = struct.Struct("<BHI")


def simulated(customers: int, days: int, seed: int) -> list[SimRecord]:
    """Keyed simulated records, cached under .local/bench/ (length-prefixed binary)."""
    path = CACHE / f"kafka-c{customers}-d{days}-s{seed}.bin"
    if not path.exists():
        say(f"simulating {customers:,} customers x {days} days (seed {seed}) -> {path}")
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with tmp.open("wb") as f:
            for topic, key, value in keyed(generate(customers, days, seed)):
                assert key is not None
                f.write(_HEAD.pack(INPUTS.index(topic), len(key), len(value)) + key + value)
        tmp.rename(path)
    data = path.read_bytes()
    out: list[SimRecord] = []
    at, size = 0, _HEAD.size
    while at < len(data):
        t, k, v = _HEAD.unpack_from(data, at)
        at += size
        out.append(SimRecord(INPUTS[t], data[at : at + k], data[at + k : at + k + v]))
        at += k + v
    return out


# -- the broker and Redis ----------------------------------------------------------------


class Services:
    """A private broker and Redis (deploy/kafka/kafka.sh, deploy/redis/redis.sh) under
    .local/bench/services, on free ports; `down` stops only what `up` started."""

    def __init__(self) -> None:
        self.local = CACHE / "services"
        self.env: dict[str, str] = {}
        self.started: list[str] = []

    def up(self) -> tuple[str, str]:
        libs = self.local / "kafka" / "libs"
        shared = REPO / ".local" / "kafka" / "libs"
        if not list(shared.glob(".complete-*")):
            subprocess.run([str(REPO / "deploy/kafka/kafka.sh"), "jars"], check=True)
        shutil.rmtree(self.local, ignore_errors=True)
        libs.parent.mkdir(parents=True)
        libs.symlink_to(shared)
        self.env = os.environ | {
            "GRADESTREAM_LOCAL": str(self.local),
            "KAFKA_PORT": str(free_port()),
            "KAFKA_CONTROLLER_PORT": str(free_port()),
            "REDIS_PORT": str(free_port()),
        }
        out = []
        for script in ("deploy/kafka/kafka.sh", "deploy/redis/redis.sh"):
            done = subprocess.run(
                [str(REPO / script), "up"], env=self.env, capture_output=True, text=True
            )
            if done.returncode != 0:
                raise RuntimeError(f"{script} up failed: {done.stderr[-2000:]}")
            self.started.append(script)
            out.append(done.stdout.strip().splitlines()[-1])
        return out[0], out[1]

    def down(self) -> None:
        for script in reversed(self.started):
            subprocess.run([str(REPO / script), "down"], env=self.env, capture_output=True)
        self.started.clear()
        shutil.rmtree(self.local, ignore_errors=True)


# -- Kafka --------------------------------------------------------------------------------


async def create_topics(names: Iterable[str], compact: bool = False) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
    await admin.start()
    try:
        config = {"cleanup.policy": "compact"} if compact else {}
        await admin.create_topics([NewTopic(n, PARTITIONS, 1, topic_configs=config) for n in names])
    finally:
        await admin.close()


async def delete_run_topics() -> list[str]:
    """Delete every topic whose name carries this run's id (inputs, outputs, Faust's and
    Quix's internal topics)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
    await admin.start()
    try:
        mine = [t for t in await admin.list_topics() if RUN in t]
        if mine:
            await admin.delete_topics(mine)
        return mine
    finally:
        await admin.close()


async def produce(
    records: Iterable[SimRecord], names: dict[str, str], key_partitioned: bool = True
) -> int:
    """Send every record to names[topic], waiting for all acknowledgements."""
    producer = AIOKafkaProducer(
        bootstrap_servers=KAFKA, linger_ms=20, acks="all", max_batch_size=256 * 1024
    )
    await producer.start()
    sent = 0
    pending: list[asyncio.Future[Any]] = []
    try:
        for topic, key, value in records:
            pending.append(await producer.send(names[topic], value=value, key=key))
            sent += 1
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent


class EndOffsets:
    """The number of records in some topics (sum of end offsets), polled from outside."""

    def __init__(self, topics: Iterable[str]) -> None:
        self.topics = list(topics)
        self.consumer = AIOKafkaConsumer(bootstrap_servers=KAFKA, enable_auto_commit=False)
        self.tps: list[TopicPartition] = []

    async def __aenter__(self) -> EndOffsets:
        await self.consumer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.consumer.stop()

    async def total(self) -> int:
        if len(self.tps) < len(self.topics) * PARTITIONS:
            await self.consumer._client.force_metadata_update()
            self.tps = [
                TopicPartition(t, p)
                for t in self.topics
                for p in sorted(self.consumer.partitions_for_topic(t) or ())
            ]
            if not self.tps:
                return 0
        ends = await self.consumer.end_offsets(self.tps)
        return int(sum(ends.values()))


# -- processes ----------------------------------------------------------------------------


@dataclass
class Proc:
    """A subprocess under measurement: its CPU time and RSS through psutil."""

    popen: subprocess.Popen[bytes]
    log: Path
    ps: psutil.Process = field(init=False)

    def __post_init__(self) -> None:
        self.ps = psutil.Process(self.popen.pid)

    @classmethod
    def start(cls, argv: list[str], env: dict[str, str], log: Path) -> Proc:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as out:
            popen = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        return cls(popen, log)

    def cpu(self) -> float:
        t = self.ps.cpu_times()
        return float(t.user + t.system)

    def rss(self) -> int:
        return int(self.ps.memory_info().rss)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self) -> None:
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(60)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


@dataclass
class Drain:
    events: int
    seconds: float
    eps: float
    cpu_us: float
    cpu_share: float  # CPU seconds per wall second (1.0 = one core busy)
    peak_rss_mib: float
    samples: list[tuple[float, int]]  # (seconds since the first progress, events done)


async def drain(proc: Proc, progress: Callable[[], Awaitable[int]], total: int, name: str) -> Drain:
    """Poll `progress()` until it reaches `total`; rate and CPU from the first poll that
    saw progress (start-up and recovery excluded) to the end."""
    first: tuple[float, int, float] | None = None
    samples: list[tuple[float, int]] = []
    peak = 0
    last_report = time.monotonic()
    while True:
        if not proc.alive():
            raise RuntimeError(f"{name} died; see {proc.log}")
        done = await progress()
        now, cpu = time.monotonic(), proc.cpu()
        peak = max(peak, proc.rss())
        if first is None and done > 0:
            first = (now, done, cpu)
        if first is not None:
            samples.append((now - first[0], done))
        if done >= total:
            break
        if now - last_report > 15:
            say(f"  {name}: {done:,} / {total:,}")
            last_report = now
        await asyncio.sleep(POLL)
    assert first is not None
    t0, c0, cpu0 = first
    events, seconds = done - c0, now - t0
    return Drain(
        events=events,
        seconds=seconds,
        eps=events / seconds if seconds else float("nan"),
        cpu_us=(cpu - cpu0) / events * 1e6 if events else float("nan"),
        cpu_share=(cpu - cpu0) / seconds if seconds else float("nan"),
        peak_rss_mib=peak / 2**20,
        samples=samples[:: max(1, len(samples) // 400)],
    )


# -- the worker -------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Worker:
    """One `gradestream worker` with unique topics, app id, Redis prefix and datadir."""

    name: str
    inputs: dict[str, str]
    datadir: Path
    port: int = field(default_factory=free_port)
    proc: Proc | None = None

    @property
    def app_id(self) -> str:
        return f"{RUN}-{self.name}-app"

    def topic(self, kind: str) -> str:
        return f"{RUN}-{self.name}-{kind}"

    def env(self) -> dict[str, str]:
        env = {
            **os.environ,
            "GRADESTREAM_APP_ID": self.app_id,
            "GRADESTREAM_KAFKA_BOOTSTRAP_SERVERS": KAFKA,
            "GRADESTREAM_REDIS_URL": REDIS,
            "GRADESTREAM_REDIS_KEY_PREFIX": f"{RUN}-{self.name}",
            "GRADESTREAM_CLOCK": "event",
            "GRADESTREAM_DATADIR": str(self.datadir),
            "GRADESTREAM_WEB_PORT": str(self.port),
            "GRADESTREAM_PARTITIONS": str(PARTITIONS),
        }
        for kind, topic in self.inputs.items():
            env[f"GRADESTREAM_TOPIC_{kind.upper()}"] = topic
        for kind in (*OUTPUTS, "customer-grades"):
            env[f"GRADESTREAM_TOPIC_{kind.upper().replace('-', '_')}"] = self.topic(kind)
        env["GRADESTREAM_TOPIC_DEAD_LETTERS"] = self.topic("dlq")
        env["GRADESTREAM_TOPIC_TICKS"] = self.topic("ticks")
        return env

    def start(self) -> Proc:
        self.datadir.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "streams.cli", "worker", "--loglevel", "info"]
        self.proc = Proc.start(argv, self.env(), self.datadir / "worker.log")
        return self.proc

    async def metrics(self) -> dict[str, float]:
        """Every sample of /metrics, by its full name with labels (empty while starting)."""
        url = f"http://127.0.0.1:{self.port}/metrics"
        try:
            async with aiohttp.ClientSession() as http, http.get(url) as response:
                text = await response.text()
        except aiohttp.ClientError:
            return {}
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    async def events_in(self) -> int:
        m = await self.metrics()
        return int(sum(v for k, v in m.items() if k.startswith("gradestream_events_in_total{")))

    async def committed(self) -> int:
        """The worker's committed offsets on its input topics, summed: what it has
        acknowledged as handled, whatever it read twice after a seek back."""
        admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
        await admin.start()
        try:
            offsets = await admin.list_consumer_group_offsets(self.app_id)
        finally:
            await admin.close()
        inputs = set(self.inputs.values())
        return sum(o.offset for tp, o in offsets.items() if tp.topic in inputs and o.offset > 0)

    async def drained(self, total: int) -> None:
        """Until every input record has been read and its offset committed."""
        while await self.events_in() < total or await self.committed() < total:  # noqa: ASYNC110
            await asyncio.sleep(0.5)

    async def ready(self, within: float = 1800) -> float:
        """Wait for /health 200 (first assignment recovered and indexed); the seconds."""
        started = time.monotonic()
        url = f"http://127.0.0.1:{self.port}/health"
        async with aiohttp.ClientSession() as http:
            while True:
                assert self.proc is not None
                if not self.proc.alive():
                    raise RuntimeError(f"worker {self.name} died; see {self.proc.log}")
                try:
                    async with http.get(url) as response:
                        if response.status == 200:
                            return time.monotonic() - started
                except aiohttp.ClientError:
                    pass
                if time.monotonic() - started > within:
                    raise RuntimeError(f"worker {self.name} not ready in {within} s")
                await asyncio.sleep(POLL)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()


def stepped_by_time(m: dict[str, float]) -> float:
    """Due customers whose time was let pass: by the sweep's ticks or in input batches."""
    return m.get("gradestream_sweep_customers_sum", 0.0) + m.get(
        "gradestream_due_in_batch_total", 0.0
    )


def by_prefix(m: dict[str, float], prefix: str) -> dict[str, float]:
    return {k[len(prefix) :]: v for k, v in m.items() if k.startswith(prefix)}


# -- 1. the drain -------------------------------------------------------------------------


async def phase_drain(records: list[SimRecord], tmp: Path) -> dict[str, Any]:
    names = {kind: f"{RUN}-in-{kind}" for kind in INPUTS}
    await create_topics(names.values())
    started = time.monotonic()
    sent = await produce(records, names)
    produce_s = time.monotonic() - started
    say(f"backlog: {sent:,} records produced in {produce_s:.0f} s ({sent / produce_s:,.0f}/s)")
    result: dict[str, Any] = {
        "events": sent,
        "by_topic": {k: sum(1 for r in records if r.topic == k) for k in INPUTS},
        "produce_eps": sent / produce_s,
    }

    worker = Worker("drain", names, tmp / "drain")
    proc = worker.start()
    try:
        ready_s = await worker.ready()
        say(f"worker ready in {ready_s:.1f} s; draining")
        d = await drain(proc, worker.events_in, sent, "worker")
        m = await worker.metrics()
        result["worker"] = vars(d) | {
            "ready_seconds": ready_s,
            "dead_letters": by_prefix(m, "gradestream_dead_letters_total"),
            "outputs": by_prefix(m, "gradestream_outputs_total"),
            "duplicates": m.get("gradestream_duplicates_total", 0.0),
            "sweep_customers": m.get("gradestream_sweep_customers_sum", 0.0),
            "due_in_batch": m.get("gradestream_due_in_batch_total", 0.0),
            "rewinds": m.get("gradestream_rewinds_total", 0.0),
        }
        say(f"worker: {d.eps:,.0f} events/s, {d.cpu_us:,.1f} µs CPU/event, {d.cpu_share:.2f} cores")
    finally:
        worker.stop()
    result["two_workers"] = vars(await drain_workers(2, names, sent, tmp))

    for peer in PEERS:
        out = f"{RUN}-{peer}-out"
        await create_topics([out])
        group = f"{RUN}-{peer}"
        if peer == "bare":
            argv = [sys.executable, str(REPO / "bench/peers/bare_aiokafka.py")]
        elif peer == "faust":
            argv = [sys.executable, str(REPO / "bench/peers/faust_floor.py")]
        elif QUIX_PYTHON.exists():
            argv = [str(QUIX_PYTHON), str(REPO / "bench/peers/quix_rfm.py")]
            argv += ["--state-dir", str(tmp / "quix-state")]
        else:
            result[peer] = {"error": f"{QUIX_PYTHON} missing: run `make bench`"}
            continue
        argv += ["--bootstrap", KAFKA, "--group", group, "--out", out, *names.values()]
        proc = Proc.start(argv, dict(os.environ), tmp / f"{peer}.log")
        try:
            async with EndOffsets([out]) as outputs:
                d = await drain(proc, outputs.total, sent, peer)
            result[peer] = vars(d)
            say(f"{peer}: {d.eps:,.0f} events/s, {d.cpu_us:,.1f} µs CPU/event")
        except RuntimeError as exc:
            result[peer] = {"error": str(exc), "log": proc.log.read_text()[-2000:]}
            say(f"{peer} failed: {exc}")
        finally:
            proc.stop()
    return result


@dataclass
class Procs:
    """Several processes measured as one: CPU and RSS summed, alive while all are."""

    procs: list[Proc]

    def cpu(self) -> float:
        return sum(p.cpu() for p in self.procs)

    def rss(self) -> int:
        return sum(p.rss() for p in self.procs)

    def alive(self) -> bool:
        return all(p.alive() for p in self.procs)


async def drain_workers(n: int, names: dict[str, str], sent: int, tmp: Path) -> Drain:
    """The backlog drained by `n` workers of one group on this machine (own data
    directories and ports), their events and CPU summed."""
    workers = [Worker(f"drain-{n}", names, tmp / f"drain-{n}-{i}") for i in range(n)]
    procs = Procs([w.start() for w in workers])
    try:
        await asyncio.gather(*(w.ready() for w in workers))

        async def events_in() -> int:
            return sum(await asyncio.gather(*(w.events_in() for w in workers)))

        d = await drain(procs, events_in, sent, f"{n} workers")  # type: ignore[arg-type]
    finally:
        for w in workers:
            w.stop()
    say(f"{n} workers: {d.eps:,.0f} events/s, {d.cpu_us:,.1f} µs CPU/event")
    return d


# -- 2. latency -------------------------------------------------------------------------


async def phase_latency(
    records: list[SimRecord], tmp: Path, rates: list[int], durations: list[float]
) -> dict[str, Any]:
    names = {kind: f"{RUN}-lat-{kind}" for kind in INPUTS}
    await create_topics(names.values())
    worker = Worker("lat", names, tmp / "lat")
    proc = worker.start()
    result: dict[str, Any] = {"seconds": dict(zip(map(str, rates), durations, strict=True))}
    try:
        await worker.ready()
        outs = [worker.topic(k) for k in OUTPUTS]
        consumer = AIOKafkaConsumer(
            *outs, bootstrap_servers=KAFKA, auto_offset_reset="earliest", fetch_max_wait_ms=50
        )
        await consumer.start()
        # (cause event id, output record's timestamp, when it reached us), ms
        got: list[tuple[str, int, int]] = []

        async def collect() -> None:
            async for message in consumer:
                cause = orjson.loads(message.value).get("cause", {})
                if cause.get("kind") == "event":
                    got.append((cause["event_id"], message.timestamp, int(time.time() * 1000)))

        collector = asyncio.create_task(collect())
        producer = AIOKafkaProducer(bootstrap_servers=KAFKA, acks="all")
        await producer.start()
        sent_at: dict[str, tuple[int, int, str]] = {}  # event id -> (produce ms, rate, topic)
        stream = iter(records)
        total = 0
        try:
            for rate, seconds in zip(rates, durations, strict=True):
                hist0 = by_prefix(await worker.metrics(), "gradestream_processing_seconds")
                cpu0, t0 = proc.cpu(), time.monotonic()
                n = int(rate * seconds)
                for i, (topic, key, value) in enumerate(_take(stream, n)):
                    due = t0 + i / rate
                    wait = due - time.monotonic()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    ms = int(time.time() * 1000)
                    try:
                        event_id = orjson.loads(value).get("event_id")
                    except (orjson.JSONDecodeError, AttributeError):
                        event_id = None
                    if isinstance(event_id, str) and event_id not in sent_at:
                        sent_at[event_id] = (ms, rate, topic)
                    await producer.send(names[topic], value=value, key=key, timestamp_ms=ms)
                await producer.flush()
                achieved = n / (time.monotonic() - t0)
                total += n
                lag_at_end = total - await worker.events_in()
                await worker.drained(total)
                spent = time.monotonic() - t0
                result[str(rate)] = {
                    "events": n,
                    "achieved_rate": achieved,
                    "behind_when_producing_ended": lag_at_end,
                    "cpu_share": (proc.cpu() - cpu0) / spent,
                    "cpu_us": (proc.cpu() - cpu0) / n * 1e6,
                    "worker_histogram": _hist_quantiles(
                        hist0, by_prefix(await worker.metrics(), "gradestream_processing_seconds")
                    ),
                }
                say(f"latency {rate}/s: sent {n:,} at {achieved:,.0f}/s, {lag_at_end:,} behind")
            seen = -1
            while seen != len(got):  # until no output came for 3 s
                seen = len(got)
                await asyncio.sleep(3)
        finally:
            await producer.stop()
            collector.cancel()
            await consumer.stop()
        m = await worker.metrics()
        result["rewinds"] = m.get("gradestream_rewinds_total", 0.0)
        result["processing_seconds_histogram"] = by_prefix(m, "gradestream_processing_seconds")
    finally:
        worker.stop()
    for rate in rates:
        mine = [
            (sent_at[e][0], ts, at, sent_at[e][2])
            for e, ts, at in got
            if sent_at.get(e, (0, 0, ""))[1] == rate
        ]
        lat = sorted(at - sent for sent, _, at, _ in mine)
        stamped = sorted(ts - sent for sent, ts, _, _ in mine)
        by_topic = {}
        for kind in INPUTS:
            of = sorted(at - sent for sent, _, at, t in mine if t == kind)
            if of:
                by_topic[kind] = {"n": len(of), "p50_ms": _pct(of, 0.5), "p99_ms": _pct(of, 0.99)}
        if lat:
            result[str(rate)] |= {
                "outputs_measured": len(lat),
                "p50_ms": _pct(lat, 0.50),
                "p99_ms": _pct(lat, 0.99),
                "max_ms": lat[-1],
                "by_output_timestamp": {
                    "p50_ms": _pct(stamped, 0.5),
                    "p99_ms": _pct(stamped, 0.99),
                },
                "by_cause_topic": by_topic,
            }
    return result


def _hist_quantiles(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    """p50/p99 of the worker's own processing-time histogram (Kafka timestamp to graded,
    every graded event) between two scrapes, as the upper bound of the bucket it falls in."""
    buckets = sorted(
        (float(k.split('"')[1]), after[k] - before.get(k, 0.0))
        for k in after
        if k.startswith("_bucket{")
    )
    total = buckets[-1][1] if buckets else 0.0
    out: dict[str, Any] = {"graded": total}
    for name, q in (("p50_le_s", 0.5), ("p99_le_s", 0.99)):
        out[name] = next((le for le, c in buckets if c >= q * total), None) if total else None
    return out


def _take(it: Iterator[SimRecord], n: int) -> Iterator[SimRecord]:
    for _ in range(n):
        yield next(it)


def _pct(values: list[int], q: float) -> float:
    return float(values[min(len(values) - 1, int(q * len(values)))])


# -- 3. customers: memory, sweep and throughput from 10k to 1M ------------------------------


def source_states(customers: int, days: int, seed: int) -> list[bytes]:
    """Encoded states after replaying a simulation: the shapes cloned into a population."""
    path = CACHE / f"states-c{customers}-d{days}-s{seed}.bin"
    if not path.exists():
        say(f"replaying {customers:,} customers x {days} days for their states")
        source = CACHE / f"sim-c{customers}-d{days}-s{seed}.jsonl"
        if not source.exists():
            write_jsonl(generate(customers, days, seed, config=SimConfig(keys=False)), source)
        _, _, states = timed_replay(source)
        path.write_bytes(b"\n".join(encode(s) for s in states))
    return path.read_bytes().split(b"\n")


def population_id(i: int) -> str:
    return f"pop-{i:07d}"


def clones(states: list[bytes], n: int) -> Iterator[tuple[bytes, bytes, int | None]]:
    """n states cloned from `states` under ids pop-0000000.. (key, value, due)."""
    for i in range(n):
        v = orjson.loads(states[i % len(states)])
        v[1] = population_id(i)
        yield v[1].encode(), orjson.dumps(v), v[4]


async def phase_customers(
    sizes: list[int], states: list[bytes], backlog_customers: int, tmp: Path
) -> list[dict[str, Any]]:
    rows = []
    for n in sizes:
        rows.append(await _one_population(n, states, backlog_customers, tmp))
    return rows


async def _one_population(
    n: int, states: list[bytes], backlog_customers: int, tmp: Path
) -> dict[str, Any]:
    name = f"pop{n}"
    names = {kind: f"{RUN}-{name}-{kind}" for kind in INPUTS}
    await create_topics(names.values())
    worker = Worker(name, names, tmp / name)
    changelog = f"{worker.app_id}-customers-changelog"
    await create_topics([changelog], compact=True)
    say(f"{n:,} customers: producing their states to {changelog}")
    dues: list[int] = []
    end_time = 0

    def records() -> Iterator[SimRecord]:
        nonlocal end_time
        for key, value, due in clones(states, n):
            if due is not None:
                dues.append(due)
            end_time = max(end_time, orjson.loads(value)[2])
            yield SimRecord("changelog", key, value)

    await produce(records(), {"changelog": changelog})
    dues.sort()
    t1 = dues[int(0.01 * n)] if dues else end_time  # 1% of the customers due at t1
    expect_due = bisect.bisect_right(dues, t1)
    proc = worker.start()
    row: dict[str, Any] = {"customers": n}
    try:
        row["ready_seconds"] = await worker.ready()
        await asyncio.sleep(5)  # let the first sweeps and the view settle
        row["rss_mib"] = proc.rss() / 2**20
        row["rocksdb_mib"] = _du(worker.datadir) / 2**20
        m0 = await worker.metrics()
        row["idle_sweep_ms"] = (
            m0.get("gradestream_sweep_seconds_sum", 0.0)
            / max(1.0, m0.get("gradestream_sweep_seconds_count", 0.0))
            * 1e3
        )
        say(
            f"{n:,} customers: ready in {row['ready_seconds']:.1f} s, RSS {row['rss_mib']:.0f} "
            f"MiB, RocksDB {row['rocksdb_mib']:.0f} MiB; now {expect_due:,} due"
        )
        row["sweep"] = await _sweep(worker, proc, names, t1, expect_due, m0)
        # A backlog for existing customers over the next day (event time from t1 on).
        start = datetime.fromtimestamp(t1, UTC)
        rng = random.Random(n)
        remap: dict[str, str] = {}
        backlog: list[SimRecord] = []
        for topic, _key, value in generate(backlog_customers, 1, 5, start=start):
            try:
                body = orjson.loads(value)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(body, dict) or not isinstance(body.get("customer_id"), str):
                continue
            cid = body["customer_id"]
            new = remap.setdefault(cid, population_id(rng.randrange(n)))
            body["customer_id"] = new
            backlog.append(SimRecord(topic, new.encode(), orjson.dumps(body)))
        before = await worker.events_in()
        await produce(backlog, names)
        d = await drain(proc, lambda: _since(worker, before), len(backlog), f"{n:,} customers")
        row["drain"] = vars(d) | {
            "customers_touched": len(set(remap.values())),
            "rewinds": (await worker.metrics()).get("gradestream_rewinds_total", 0.0),
        }
        row["rss_after_drain_mib"] = proc.rss() / 2**20
        say(f"{n:,} customers: {d.eps:,.0f} events/s, {d.cpu_us:,.1f} µs CPU/event")
    finally:
        worker.stop()
    return row


async def _since(worker: Worker, before: int) -> int:
    return await worker.events_in() - before


async def _sweep(
    worker: Worker,
    proc: Proc,
    names: dict[str, str],
    t1: int,
    expect_due: int,
    m0: dict[str, float],
) -> dict[str, Any]:
    """Move each partition's event time to t1 (one interaction of a new customer per
    partition), then wait for the sweep's ticks to be applied (the worker idle again)."""
    clock: list[SimRecord] = []
    for p in range(PARTITIONS):
        i = 0
        while partition_of(f"clock-{p}-{i}", PARTITIONS) != p:
            i += 1
        cid = f"clock-{p}-{i}"
        event = {
            "event_id": f"clock-{RUN}-{p}",
            "customer_id": cid,
            "occurred_at": format_rfc3339(t1),
            "type": "page_view",
        }
        clock.append(SimRecord("interactions", cid.encode(), orjson.dumps(event)))
    cpu0, t0 = proc.cpu(), time.monotonic()
    await produce(clock, names)
    swept0 = stepped_by_time(m0)
    idle_since: float | None = None
    last_cpu, last_t = cpu0, t0
    m = m0
    while True:
        await asyncio.sleep(0.5)
        m = await worker.metrics()
        cpu, now = proc.cpu(), time.monotonic()
        swept = stepped_by_time(m) - swept0
        busy = (cpu - last_cpu) / (now - last_t)
        last_cpu, last_t = cpu, now
        if swept >= 0.9 * expect_due and busy < 0.1:
            idle_since = idle_since or now
            if now - idle_since >= 2.0:
                break
        else:
            idle_since = None
        if now - t0 > 900:
            break
    idle = (await worker.metrics()).get("gradestream_sweep_seconds_count", 0.0)
    sweeps = idle - m0.get("gradestream_sweep_seconds_count", 0.0)
    sweep_s = m.get("gradestream_sweep_seconds_sum", 0.0) - m0.get(
        "gradestream_sweep_seconds_sum", 0.0
    )
    assert idle_since is not None or now - t0 > 900
    wall = (idle_since or now) - t0
    cpu_used = last_cpu - cpu0
    return {
        "due_expected": expect_due,
        "customers_swept": swept,
        "sweeps": sweeps,
        "sweep_seconds_total": sweep_s,
        "wall_until_idle_s": wall,
        "cpu_until_idle_s": cpu_used,
        "cpu_us_per_due_customer": cpu_used / swept * 1e6 if swept else None,
    }


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# -- facts, output ------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    jars = sorted((REPO / ".local" / "kafka" / "libs").glob("kafka_2.13-*.jar"))
    kafka = jars[0].stem.split("-", 1)[1] if jars else "unknown"
    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, cwd=REPO)
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "streams"], capture_output=True, cwd=REPO
    )
    load = os.getloadavg()
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "python": platform.python_version(),
        "kafka": kafka,
        "quixstreams": _quix_version(),
        "commit": git.stdout.decode().strip(),
        "streams_uncommitted_changes": bool(dirty.stdout.strip()),
        "load_average_at_start": load,
        "memory_gib": psutil.virtual_memory().total / 2**30,
    }


def _quix_version() -> str | None:
    if not QUIX_PYTHON.exists():
        return None
    out = subprocess.run(
        [str(QUIX_PYTHON), "-c", "import importlib.metadata as m; print(m.version('quixstreams'))"],
        capture_output=True,
    )
    return out.stdout.decode().strip() or None


def report(res: dict[str, Any]) -> str:
    """The figures as Markdown (printed, and the docs section)."""
    mach, d = res["machine"], res["drain"]
    w = d["worker"]
    lines = [
        f"Machine: {mach['cpus']} CPUs, {mach['cpu_model']}; CPython {mach['python']}; "
        f"Apache Kafka {mach['kafka']} (local single node, KRaft); quixstreams "
        f"{mach['quixstreams']}. Commit {mach['commit']}"
        + (" with uncommitted changes in streams/" if mach["streams_uncommitted_changes"] else "")
        + f". Load average (1 min) {mach['load_average_at_start'][0]:.1f} at the start, "
        f"{mach.get('load_average_at_end', [float('nan')])[0]:.1f} at the end (above ~1 at the "
        "start, something else was running).",
        *(
            f"Phase {phase} re-run in {run}: commit {m['commit']}"
            + (" with uncommitted changes in streams/" if m["streams_uncommitted_changes"] else "")
            + f", load average {m['load_average_at_start'][0]:.1f} at its start."
            for phase, run in res.get("phase_runs", {}).items()
            if (m := res.get("phase_machine", {}).get(run)) is not None
        ),
        "",
        f"Command: {_code(res['command'])} ({res['wall_minutes']:.0f} min"
        + (", phases run separately: see the results file)." if "phase_runs" in res else ")."),
        "",
        f"**Drain** of {d['events']:,} simulated events ("
        + ", ".join(f"{k} {v:,}" for k, v in d["by_topic"].items())
        + f"), {PARTITIONS} partitions per topic, customers {res['args']['customers']:,}:",
        "",
        "| consumer | events/s | CPU µs/event | CPU cores busy | peak RSS | worker ÷ it |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key, label in (
        ("worker", "gradestream worker (Faust, RocksDB)"),
        ("two_workers", "two gradestream workers of one group (summed)"),
        ("bare", "bare aiokafka loop (orjson, 1 record out per input)"),
        ("faust", "faust floor: the worker's shape, no grading (orjson, 1 record out per input)"),
        ("quix", "Quix Streams RFM update (RocksDB state)"),
    ):
        r = d.get(key, {})
        if "eps" not in r:
            lines.append(f"| {label} | failed: {r.get('error', 'not run')} | | | | |")
            continue
        ratio = "—" if key in ("worker", "two_workers") else f"{w['eps'] / r['eps']:.2%}"
        lines.append(
            f"| {label} | {r['eps']:,.0f} | {r['cpu_us']:,.1f} | {r['cpu_share']:.2f} | "
            f"{r['peak_rss_mib']:,.0f} MiB | {ratio} |"
        )
    two = d.get("two_workers", {})
    if "eps" in two:
        lines += ["", f"Two workers ÷ one: {two['eps'] / w['eps']:.2f}x its events/s."]
    dl = ", ".join(f"{k} {int(v):,}" for k, v in sorted(w["dead_letters"].items()))
    out = ", ".join(f"{k} {int(v):,}" for k, v in sorted(w["outputs"].items()))
    lines += [
        "",
        f"Worker: ready {w['ready_seconds']:.1f} s after start; dead letters {dl or 'none'}; "
        f"outputs {out}; duplicates {int(w['duplicates']):,}; due customers stepped in "
        f"input batches {int(w.get('due_in_batch', 0)):,}, ticked by sweeps "
        f"{int(w['sweep_customers']):,}; seeks back (rewinds) {int(w.get('rewinds', 0)):,}.",
        "",
    ]
    lat = res["latency"]
    lines += [
        "**Latency**, produce to output event (when an output event reached a consumer of the "
        "output topics minus the produce timestamp of the input that caused it, by "
        "cause.event_id), one fresh worker fed each rate in "
        "turn for "
        + ", ".join(
            f"{float(lat['seconds'][k]):.0f} s at {int(k):,}/s"
            for k in sorted(lat["seconds"], key=int)
        )
        + ", each rate's backlog drained before the next:",
        "",
        "| rate | achieved | outputs measured | p50 | p99 | max | worker's histogram p50 / p99 "
        "(bucket bound) | CPU cores busy | behind when producing ended |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    causes = []
    for key in sorted(lat["seconds"], key=int):
        rate, r = int(key), lat[key]
        h = r["worker_histogram"]
        causes.append(
            f"{rate:,}/s: "
            + ", ".join(
                f"{t} {c['n']:,} ({c['p50_ms']:,.0f} / {c['p99_ms']:,.0f} ms)"
                for t, c in r.get("by_cause_topic", {}).items()
            )
        )
        lines.append(
            f"| {rate:,}/s | {r['achieved_rate']:,.0f}/s | {r.get('outputs_measured', 0):,} | "
            f"{r.get('p50_ms', float('nan')):,.0f} ms | {r.get('p99_ms', float('nan')):,.0f} ms"
            f" | {r.get('max_ms', float('nan')):,.0f} ms"
            f" | {_bound(h['p50_le_s'])} / {_bound(h['p99_le_s'])} | {r['cpu_share']:.2f} | "
            f"{r['behind_when_producing_ended']:,} |"
        )
    lines += [
        "",
        "Output events by the input topic of their cause (count, p50 / p99): "
        + "; ".join(causes)
        + f". Seeks back (rewinds) during the latency run: {int(lat.get('rewinds', 0)):,}.",
    ]
    pops = res["customers"]
    lines += [
        "",
        "**Customers**: each row a fresh worker recovering that many states from its table's "
        "changelog (clones of a replayed simulation's states), then one record per partition "
        "moves its time so that ~1% are due (stepped in that record's batch and by the "
        "sweep's ticks), "
        "then a backlog of events for existing customers:",
        "",
        "| customers | ready (recover + index) | RSS | RocksDB on disk | idle sweep | "
        "due stepped | steps wall / CPU | CPU per due customer | backlog events/s | "
        "CPU µs/event |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in pops:
        s, dr = p["sweep"], p["drain"]
        per = s["cpu_us_per_due_customer"]
        lines.append(
            f"| {p['customers']:,} | {p['ready_seconds']:.0f} s | {p['rss_mib']:,.0f} MiB | "
            f"{p['rocksdb_mib']:,.0f} MiB | {p['idle_sweep_ms']:.2f} ms | "
            f"{int(s['customers_swept']):,} | {s['wall_until_idle_s']:.1f} s / "
            f"{s['cpu_until_idle_s']:.1f} s | "
            f"{'-' if per is None else f'{per:,.0f} µs'} | "
            f"{dr['eps']:,.0f} | {dr['cpu_us']:,.0f} |"
        )
    if len(pops) >= 2:
        a, b = pops[0], pops[-1]
        dn = b["customers"] - a["customers"]
        lines += [
            "",
            f"Memory per customer (slope {a['customers']:,} → {b['customers']:,}): RSS "
            f"{(b['rss_mib'] - a['rss_mib']) * 2**20 / dn:,.0f} bytes, RocksDB on disk "
            f"{(b['rocksdb_mib'] - a['rocksdb_mib']) * 2**20 / dn:,.0f} bytes.",
        ]
    return "\n".join(lines)


def _bound(le: float | None) -> str:
    """A histogram bucket's upper bound; None (JSON's +Inf) is above the last, 30 s."""
    return "> 30 s" if le is None or le == float("inf") else f"≤ {le:g} s"


def _code(command: str) -> str:
    return command if "`" in command else f"`{command}`"


def plot(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    d = res["drain"]
    ax = axes[0][0]
    for key in ("worker", *PEERS):
        if "samples" in d.get(key, {}):
            xs = [s for s, _ in d[key]["samples"]]
            ys = [n for _, n in d[key]["samples"]]
            ax.plot(xs, ys, label=f"{key}: {d[key]['eps']:,.0f}/s")
    ax.set(title=f"draining {d['events']:,} events", xlabel="s", ylabel="events done")
    ax.legend()
    ax = axes[0][1]
    labels = [k for k in ("worker", *PEERS) if "eps" in d.get(k, {})]
    ax.bar(labels, [d[k]["eps"] for k in labels], color=["C0", "C1", "C2", "C3"][: len(labels)])
    ax.set(title="sustained throughput", ylabel="events/s", yscale="log")
    ax = axes[1][0]
    lat = res["latency"]
    rates = [int(k) for k in sorted(lat["seconds"], key=int) if "p50_ms" in lat[k]]
    xs = range(len(rates))
    ax.bar([x - 0.2 for x in xs], [lat[str(r)]["p50_ms"] for r in rates], 0.4, label="p50")
    ax.bar([x + 0.2 for x in xs], [lat[str(r)]["p99_ms"] for r in rates], 0.4, label="p99")
    ax.set_xticks(list(xs), [f"{r:,}/s" for r in rates])
    ax.set(title="produce → output event latency", ylabel="ms", yscale="log")
    ax.legend()
    ax = axes[1][1]
    pops = res["customers"]
    if pops:
        n = [p["customers"] for p in pops]
        ax.plot(n, [p["drain"]["eps"] for p in pops], "o-", color="C0", label="events/s")
        ax.set(xscale="log", xlabel="customers", ylabel="events/s", title="scaling")
        ax2 = ax.twinx()
        ax2.plot(n, [p["rss_mib"] for p in pops], "s--", color="C3", label="RSS MiB")
        ax2.set_ylabel("RSS MiB")
        ax.legend(loc="upper left")
        ax2.legend(loc="upper right")
    fig.suptitle(f"gradestream worker on the local broker ({res['machine']['cpus']} CPUs)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def write_docs(section: str) -> None:
    text = DOCS.read_text()
    block = f"{BEGIN}\n\n{section}\n\n{END}"
    if BEGIN in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    DOCS.write_text(text)


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    global KAFKA, REDIS
    tmp = CACHE / RUN
    tmp.mkdir(parents=True)
    started = time.monotonic()
    services = Services()
    if not (KAFKA and REDIS):
        KAFKA, REDIS = services.up()
        say(f"private broker at {KAFKA}, Redis at {REDIS}")
    res: dict[str, Any] = {"run": RUN, "machine": machine(), "args": vars(args)}
    res["machine"]["broker"] = "private (deploy/kafka/kafka.sh)" if services.started else KAFKA
    script = ".venv/bin/python bench/stream_bench.py"
    res["command"] = f"{script} --quick" if args.quick else "make bench"
    if set(args.phases) != set(PHASES):
        res["command"] = f"{script} --phases {' '.join(args.phases)}"
    try:
        if "drain" in args.phases:
            records = simulated(args.customers, args.days, args.seed)
            say(f"{len(records):,} simulated records over {args.customers:,} customers")
            res["drain"] = await phase_drain(records, tmp)
            _partial(res)
        if "latency" in args.phases:
            lat_records = simulated(args.latency_customers, args.days, args.seed + 1)
            # From the middle of the year: customers join all along, so outputs come evenly.
            lat_records = lat_records[len(lat_records) // 2 :]
            res["latency"] = await phase_latency(lat_records, tmp, args.rates, args.latency_seconds)
            _partial(res)
        if "customers" in args.phases:
            states = source_states(args.state_customers, args.days, args.seed + 2)
            res["customers"] = await phase_customers(
                args.sizes, states, args.backlog_customers, tmp
            )
    finally:
        if services.started:
            services.down()
            say("stopped the private broker and Redis")
        else:
            deleted = await delete_run_topics()
            say(f"deleted {len(deleted)} topics of {RUN}")
        shutil.rmtree(tmp, ignore_errors=True)
    res["wall_minutes"] = (time.monotonic() - started) / 60
    res["machine"]["load_average_at_end"] = os.getloadavg()
    return res


def _partial(res: dict[str, Any]) -> None:
    """What is measured so far, in case a later phase fails."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (CACHE / f"{RUN}.partial.json").write_bytes(orjson.dumps(res, option=orjson.OPT_INDENT_2))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, for development")
    ap.add_argument("--customers", type=int, default=28_000, help="of the drained backlog")
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--rates", type=int, nargs="+", default=[200, 1000, 5000])
    ap.add_argument("--latency-seconds", type=float, nargs="+", default=[30.0, 20.0, 10.0])
    ap.add_argument("--latency-customers", type=int, default=20_000)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--state-customers", type=int, default=5_000)
    ap.add_argument("--backlog-customers", type=int, default=60_000)
    ap.add_argument(
        "--phases",
        nargs="+",
        choices=PHASES,
        default=list(PHASES),
        help="run only these, keeping the others' figures from the results file",
    )
    ap.add_argument("--write-docs", action="store_true", help=f"update {DOCS.relative_to(REPO)}")
    args = ap.parse_args(argv)
    if args.quick:
        args.customers, args.latency_customers = 1_000, 2_000
        args.rates, args.latency_seconds = [200, 1000], [5.0, 5.0]
        args.sizes, args.state_customers, args.backlog_customers = [2_000, 20_000], 1_000, 20_000
    res = asyncio.run(amain(args))
    suffix = "-quick" if args.quick else ""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"stream_bench{suffix}.json"
    if set(args.phases) != set(PHASES) and not path.exists():
        # No earlier run to keep the other phases' figures from: these phases alone, and
        # no report or plot (both show every phase).
        path.write_bytes(orjson.dumps(res, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
        say(f"wrote {path} ({', '.join(args.phases)} only: no earlier run)")
        return 0
    if set(args.phases) != set(PHASES):
        old = orjson.loads(path.read_bytes())
        runs = old.get("phase_runs", dict.fromkeys(PHASES, old["run"]))
        for phase in args.phases:
            old[phase] = res[phase]
            runs[phase] = res["run"]
        old["phase_runs"] = runs
        old.setdefault("phase_machine", {})[res["run"]] = res["machine"]
        # The command stays the full run's: each phase's own line says when it was re-run.
        res = old
    path.write_bytes(orjson.dumps(res, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
    plot(res, RESULTS / f"stream_bench{suffix}.png")
    text = report(res)
    print(text)
    if args.write_docs:
        png = f"../bench/results/stream_bench{suffix}.png"
        write_docs(f"{text}\n\n![throughput, latency and scaling]({png})")
        say(f"updated {DOCS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
