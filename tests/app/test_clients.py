"""The faust app the worker builds from its settings."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from streams.app.clients import QuietMonitor, faust_app
from streams.settings import Settings


def test_the_app_monitor_keeps_no_per_record_statistics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRADESTREAM_DATADIR", str(tmp_path))
    app = faust_app(Settings())
    monitor = app.monitor
    assert isinstance(monitor, QuietMonitor)
    message = SimpleNamespace(time_in=None)
    monitor.on_message_in(("t", 0), 1, message)
    monitor.on_stream_event_in(("t", 0), 1, object(), object())
    monitor.on_stream_event_out(("t", 0), 1, object(), object(), None)
    monitor.on_message_out(("t", 0), 1, message)
    assert (monitor.messages_received_total, monitor.events_total) == (0, 0)
    assert message.time_in is None
    # What it keeps per commit is faust's.
    consumer: Any = None
    monitor.on_commit_completed(consumer, monitor.on_commit_initiated(consumer))
    assert len(monitor.commit_latency) == 1
