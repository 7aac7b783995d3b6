"""Helpers for integration tests: reading topics, and Faust workers as subprocesses."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

from aiokafka import AIOKafkaConsumer

from tests.conftest import REPO

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
