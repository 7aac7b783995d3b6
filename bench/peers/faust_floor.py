"""The floor of the worker's own shape: faust-streaming with no grading. One agent per
input topic, batches from `Stream.take_events` (as the worker takes them), each record
parsed with orjson and one record produced per input through faust's producer, the
batch's acknowledgements awaited together. No table, no schema, no state.

    python bench/peers/faust_floor.py --bootstrap HOST:PORT --group G --out TOPIC IN1 IN2 ...

Runs until SIGTERM; bench/stream_bench.py counts its output records from outside. What
faust costs per record before any work is the ceiling of any faust worker here.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from collections.abc import AsyncIterator
from typing import Any, cast

import faust
import orjson


def build(bootstrap: str, group: str, out: str, inputs: list[str]) -> faust.App:
    app = faust.App(
        group,
        broker=f"kafka://{bootstrap}",
        store="memory://",
        datadir=tempfile.mkdtemp(prefix="faust-floor-"),
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        producer_linger=0.005,
        web_enabled=False,
    )
    loads, dumps, error = orjson.loads, orjson.dumps, orjson.JSONDecodeError

    async def agent(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        batches = cast(faust.Stream[bytes], stream).take_events(1000, within=0.01)
        async for events in batches:
            pending: list[Any] = []
            for event in events:
                record = event.message
                try:
                    body = loads(record.value or b"")
                    kind = body.get("type") if isinstance(body, dict) else None
                except error:
                    kind = None
                value = dumps({"in": record.offset, "type": kind})
                sent = await app.producer.send(out, record.key, value, None, None, None)
                pending.append(sent)
            await asyncio.gather(*pending)
            yield None

    for name in inputs:
        app.agent(app.topic(name), name=f"floor-{name}", concurrency=1)(agent)
    return app


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("inputs", nargs="+")
    args = ap.parse_args()
    app = build(args.bootstrap, args.group, args.out, args.inputs)
    faust.Worker(app, loglevel="warn").execute_from_commandline()


if __name__ == "__main__":
    main()
