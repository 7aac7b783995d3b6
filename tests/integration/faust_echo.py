"""A minimal Faust app for the foundation test: one agent that upper-cases what it reads.

Run as a worker subprocess (mode.Worker cannot run in a thread of the test process):
    python tests/integration/faust_echo.py --datadir DIR worker --web-port N
Topic names and the broker come from the environment the test sets.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import faust

app = faust.App(
    os.environ["ECHO_APP_ID"],
    broker=f"kafka://{os.environ['KAFKA_BOOTSTRAP_SERVERS']}",
    store="memory://",
    topic_partitions=1,
    web_host="127.0.0.1",
)
source = app.topic(os.environ["ECHO_IN"], key_serializer="raw", value_serializer="raw")
sink = app.topic(os.environ["ECHO_OUT"], key_serializer="raw", value_serializer="raw")


@app.agent(source)
async def echo(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
    async for key, value in stream.items():
        await sink.send(key=key, value=value.upper())
        yield None


if __name__ == "__main__":
    app.main()
