"""`gradestream simulate --kafka` on the real broker writes to the topics the
GRADESTREAM_TOPIC_* settings name, as the worker reads them (issue 16)."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from tests.conftest import TopicFactory

REPO = Path(__file__).resolve().parents[2]


async def test_simulate_kafka_honours_the_topic_settings(
    kafka_bootstrap: str, new_topic: TopicFactory
) -> None:
    topics = {
        name: await new_topic(f"sim-{name}") for name in ("orders", "complaints", "interactions")
    }
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("GRADESTREAM_")}
    env |= {f"GRADESTREAM_TOPIC_{name.upper()}": topic for name, topic in topics.items()}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "streams.cli", "simulate", "--kafka", kafka_bootstrap,
        "--customers", "30", "--days", "60",
        env=env | {"COLUMNS": "250"}, cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(proc.communicate(), 120)
    text = output.decode(errors="replace")
    assert proc.returncode == 0, text

    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(t, 0) for t in topics.values()])
    finally:
        await consumer.stop()
    # Every record went to a renamed topic, and the command's own count says the same.
    for topic in topics.values():
        count = ends[TopicPartition(topic, 0)]
        assert count > 0, topic
        assert re.search(rf"{topic}\s*│\s*{count:,}\s*│", text), text
