"""The Python limit: a bare aiokafka loop that consumes, parses with orjson and produces one
record per input. No state, no schema, no per-record acknowledgement wait.

    python bench/peers/bare_aiokafka.py --bootstrap HOST:PORT --group G --out TOPIC IN1 IN2 ...

Runs until SIGTERM; bench/stream_bench.py counts its output records from outside.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer


async def run(bootstrap: str, group: str, out: str, inputs: list[str]) -> None:
    consumer = AIOKafkaConsumer(
        *inputs,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=True,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    await consumer.start()
    await producer.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    loads, dumps, error = orjson.loads, orjson.dumps, orjson.JSONDecodeError
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=200, max_records=5000)
            pending = []
            for records in batches.values():
                for record in records:
                    try:
                        body = loads(record.value)
                        kind = body.get("type") if isinstance(body, dict) else None
                    except error:
                        kind = None
                    value = dumps({"in": record.offset, "type": kind})
                    pending.append(await producer.send(out, key=record.key, value=value))
            if pending:
                await asyncio.gather(*pending)
    finally:
        await producer.stop()
        await consumer.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("inputs", nargs="+")
    args = ap.parse_args()
    asyncio.run(run(args.bootstrap, args.group, args.out, args.inputs))


if __name__ == "__main__":
    main()
