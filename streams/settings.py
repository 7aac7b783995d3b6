"""The worker's settings: one typed object, read from GRADESTREAM_* environment variables.

pydantic-settings validates every value at start-up (a bad one names its variable) and
keeps secrets as `SecretStr`, which prints as '**********': a settings object can be
logged whole without leaking a password.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_datadir() -> Path:
    """The worker's RocksDB directory unless GRADESTREAM_DATADIR says: the XDG data
    directory, absolute, so that the worker starts the same from any folder."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "gradestream" / "worker"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GRADESTREAM_", frozen=True, extra="forbid")

    app_id: str = Field("gradestream", description="Faust app id: consumer group and table prefix")
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    redis_url: SecretStr = Field(
        SecretStr("redis://127.0.0.1:6379/0"),
        description="May carry a password (redis://:pw@host), so it is a secret",
    )
    redis_password: SecretStr | None = None
    redis_tls_ca_file: Path | None = Field(None, description="Set with a rediss:// URL")
    redis_key_prefix: str = "gradestream"
    policy: Path | None = Field(None, description="Policy file; default: the packaged policy")
    clock: Literal["wall", "event"] = Field(
        "wall", description="wall: live time; event: time follows stream time, as in replay"
    )
    datadir: Path = Field(
        default_factory=default_datadir, description="Created with its parents at start-up"
    )
    web_host: str = "127.0.0.1"
    web_bind: str | None = Field(None, description="Listen address; default: WEB_HOST")
    web_port: int = Field(6066, ge=1, le=65535)
    partitions: int = Field(4, ge=1, description="Partitions of the topics the worker creates")
    sweep_interval_seconds: float = Field(1.0, gt=0)
    # Records are handled in batches: the broker's acknowledgements are awaited and the
    # states persisted once per batch. A batch is cut at batch_size records or after
    # batch_wait_seconds, whichever comes first: the wait bounds the latency it adds.
    batch_size: int = Field(1000, ge=1, description="Most records per batch")
    batch_wait_seconds: float = Field(0.01, gt=0, description="Longest wait for a batch to fill")
    producer_linger_seconds: float = Field(
        0.005, ge=0, description="How long the producer gathers records into one request"
    )
    # The worker's tunables (docs/worker.md, "Tunables").
    stall_seconds: float = Field(5.0, gt=0, description="Idle time before a seek back")
    stall_tries: int = Field(3, ge=1, description="Seeks back from one place before going on")
    view_batch_size: int = Field(500, ge=1, description="Most snapshots per Redis pipeline")
    view_batch_wait_seconds: float = Field(0.2, gt=0, description="Longest wait to fill one")
    lag_interval_seconds: float = Field(5.0, gt=0, description="How often consumer lag is read")
    max_ahead_seconds: int = Field(
        86_400, ge=0, description="Event time ahead of the wall clock refused as from_the_future"
    )

    # Topic names: the defaults are the product's; every one can be renamed.
    topic_orders: str = "orders"
    topic_complaints: str = "complaints"
    topic_interactions: str = "interactions"
    topic_tier_changes: str = "tier-changes"
    topic_churn_risk: str = "churn-risk"
    topic_lifecycle_changes: str = "lifecycle-changes"
    topic_customer_grades: str = "customer-grades"
    topic_dead_letters: str = "gradestream-dlq"
    topic_ticks: str = "gradestream-ticks"

    # Kafka security. PLAINTEXT for the local broker; SASL_SSL in production.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_ca_file: Path | None = None

    def kafka_ssl_context(self) -> ssl.SSLContext | None:
        if self.kafka_security_protocol not in ("SSL", "SASL_SSL"):
            return None
        return ssl.create_default_context(
            cafile=str(self.kafka_ssl_ca_file) if self.kafka_ssl_ca_file else None
        )
