"""Prometheus metrics of the worker, served at /metrics.

prometheus_client keeps them in its default registry; one worker process, one set.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_IN = Counter("gradestream_events_in_total", "Input records read", ["topic"])
ALIGN_HELD = Gauge(
    "gradestream_align_held",
    "Input records read and waiting for the other input topics to catch up in event time",
)
TICKS_IN = Counter("gradestream_ticks_total", "Sweep ticks read (wake-ups of due customers)")
DUE_IN_BATCH = Counter(
    "gradestream_due_in_batch_total",
    "Due customers whose time was let pass in an input batch of their partition, with no tick",
)
BATCH_RECORDS = Histogram(
    "gradestream_batch_records",
    "Records per batch (acknowledgements awaited and states persisted once per batch)",
    buckets=(1, 10, 100, 250, 500, 1_000, 5_000),
)
DEAD_LETTERS = Counter(
    "gradestream_dead_letters_total", "Input records sent to the dead-letter topic", ["reason"]
)
DUPLICATES = Counter("gradestream_duplicates_total", "Events seen before, applied once")
REDELIVERED = Counter(
    "gradestream_redelivered_total",
    "Input records delivered again after they were handled (skipped)",
)
REWINDS = Counter(
    "gradestream_rewinds_total",
    "Seeks back to the next record to handle, after Kafka delivered records past it",
)
OUTPUTS = Counter("gradestream_outputs_total", "Output events published", ["type"])
PROCESSING_SECONDS = Histogram(
    "gradestream_processing_seconds",
    "Time from a record's Kafka timestamp to its grading (end-to-end latency inside the worker)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
SWEEP_CUSTOMERS = Histogram(
    "gradestream_sweep_customers",
    "Customers found due by one sweep",
    buckets=(0, 1, 10, 100, 1_000, 10_000, 100_000),
)
SWEEP_SECONDS = Histogram("gradestream_sweep_seconds", "Duration of one sweep")
DUE_CUSTOMERS = Gauge("gradestream_due_index_size", "Customers with a future due time")
CONSUMER_LAG = Gauge(
    "gradestream_consumer_lag", "Records behind the end of each assigned partition", ["topic"]
)
REDIS_WRITES = Counter("gradestream_redis_snapshots_total", "Snapshots written to the Redis view")
VIEW_REBUILDS = Counter(
    "gradestream_view_rebuilds_total",
    "Times the Redis view found that Redis had lost its data and rebuilt it from customer-grades",
)
VIEW_LAG = Gauge(
    "gradestream_view_lag",
    "Records of customer-grades not in the Redis view yet (this worker's partitions)",
)
