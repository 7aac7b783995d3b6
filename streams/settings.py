"""The worker's settings: one typed object, read from GRADESTREAM_* environment variables.

pydantic-settings validates every value at start-up and keeps secrets as `SecretStr`,
which prints as '**********': a settings object can be logged whole without leaking a
password. `load_settings` turns a refusal into one line naming the variables (never their
values, which may be secrets); `unknown_variables` names misspelt ones, which
pydantic-settings would ignore.
"""

from __future__ import annotations

import difflib
import os
import ssl
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AnyUrl,
    Field,
    FilePath,
    SecretStr,
    TypeAdapter,
    UrlConstraints,
    ValidationError,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from streams.core.errors import GradestreamError

ENV_PREFIX = "GRADESTREAM_"
# GRADESTREAM_* variables read elsewhere than Settings, so not misspellings: the schemas
# directory (streams.contracts), the replication factor of `gradestream topics create`,
# the build's compile switch (setup.py) and the local services' folder (deploy/*/*.sh).
OTHER_VARIABLES = frozenset(
    {
        "GRADESTREAM_SCHEMAS_DIR",
        "GRADESTREAM_TOPICS_REPLICATION_FACTOR",
        "GRADESTREAM_COMPILE",
        "GRADESTREAM_LOCAL",
    }
)
# The URL schemes redis-py's from_url understands.
_REDIS_URL: TypeAdapter[AnyUrl] = TypeAdapter(
    Annotated[AnyUrl, UrlConstraints(allowed_schemes=["redis", "rediss", "unix"])]
)


class SettingsError(GradestreamError):
    """The settings are refused; the message is one line naming each variable at fault."""


def default_datadir() -> Path:
    """The worker's RocksDB directory unless GRADESTREAM_DATADIR says: the XDG data
    directory, absolute, so that the worker starts the same from any folder."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "gradestream" / "worker"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="forbid")

    app_id: str = Field("gradestream", description="Faust app id: consumer group and table prefix")
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    redis_url: SecretStr = Field(
        SecretStr("redis://127.0.0.1:6379/0"),
        description="May carry a password (redis://:pw@host), so it is a secret",
    )
    redis_password: SecretStr | None = None
    redis_tls_ca_file: FilePath | None = Field(None, description="Set with a rediss:// URL")
    redis_key_prefix: str = "gradestream"
    policy: FilePath | None = Field(None, description="Policy file; default: the packaged policy")
    shadow_policy: FilePath | None = Field(
        None,
        description="A second policy graded alongside, its grades to TOPIC_SHADOW_GRADES only",
    )
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
    batch_wait_seconds: float = Field(0.03, gt=0, description="Longest wait for a batch to fill")
    producer_linger_seconds: float = Field(
        0.005, ge=0, description="How long the producer gathers records into one request"
    )
    # A batch's records go out as one record batch per partition (streams/app/outbox.py):
    # it must fit the broker's and topics' message.max.bytes (Kafka's default: 1 MiB).
    producer_max_batch_bytes: int = Field(
        524_288, ge=1024, description="Largest record batch the producer sends, in bytes"
    )
    # The worker's tunables (docs/worker.md, "Tunables").
    state_cache_customers: int = Field(
        50_000, ge=0, description="Customers whose decoded state the worker keeps (~4 KB each)"
    )
    stall_seconds: float = Field(5.0, gt=0, description="Idle time before a seek back")
    stall_tries: int = Field(3, ge=1, description="Seeks back from one place before going on")
    align_wait_seconds: float = Field(
        1.0, gt=0, description="Wait on a lagging input partition before looking into it"
    )
    align_hold_records: int = Field(
        4000, ge=1, description="Records an input partition may hold back before it is paused"
    )
    view_batch_size: int = Field(500, ge=1, description="Most snapshots per Redis pipeline")
    view_queue_batches: int = Field(
        200, ge=1, description="Delivered batches queued for Redis; past it, read back later"
    )
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
    topic_tier_warnings: str = "tier-warnings"
    topic_customer_grades: str = "customer-grades"
    topic_shadow_grades: str = "customer-grades-shadow"
    topic_dead_letters: str = "gradestream-dlq"
    topic_ticks: str = "gradestream-ticks"

    # Kafka security. PLAINTEXT for the local broker; SASL_SSL in production.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_ca_file: FilePath | None = None

    @field_validator("redis_url")
    @classmethod
    def _redis_url_is_a_url(cls, value: SecretStr) -> SecretStr:
        try:
            _REDIS_URL.validate_python(value.get_secret_value())
        except ValidationError as exc:
            # pydantic's reason only (the URL may carry a password).
            reason = exc.errors(include_url=False, include_input=False)[0]["msg"]
            raise ValueError(
                f"not a Redis URL ({reason}); expected redis://[:password@]host[:port][/db], "
                "rediss://... (TLS) or unix:///path/to/socket"
            ) from None
        return value

    @field_validator("datadir")
    @classmethod
    def _datadir_can_be_made(cls, value: Path) -> Path:
        # Checked here, created by the worker: reading settings (`topics describe`) must
        # not make folders. The nearest existing folder must be a writable directory.
        path = value.expanduser().resolve()
        nearest = next(p for p in (path, *path.parents) if p.exists())
        if not nearest.is_dir():
            raise ValueError(f"{nearest} is a file, not a directory")
        if not os.access(nearest, os.W_OK | os.X_OK):
            raise ValueError(f"{nearest} is not writable, so {path} cannot be used")
        return path

    def kafka_ssl_context(self) -> ssl.SSLContext | None:
        if self.kafka_security_protocol not in ("SSL", "SASL_SSL"):
            return None
        return ssl.create_default_context(
            cafile=str(self.kafka_ssl_ca_file) if self.kafka_ssl_ca_file else None
        )

    def kafka_client_options(self) -> dict[str, Any]:
        """Connection options of an aiokafka client (admin, producer): security included,
        as the worker connects (Faust takes the same settings in its own form)."""
        options: dict[str, Any] = {"security_protocol": self.kafka_security_protocol}
        ssl_context = self.kafka_ssl_context()
        if ssl_context is not None:
            options["ssl_context"] = ssl_context
        if self.kafka_security_protocol.startswith("SASL"):
            password = self.kafka_sasl_password
            options |= {
                "sasl_mechanism": self.kafka_sasl_mechanism,
                "sasl_plain_username": self.kafka_sasl_username,
                "sasl_plain_password": password.get_secret_value() if password else None,
            }
        return options

    def input_topics(self) -> dict[str, str]:
        """The product's input topic names (as `streams.contracts` knows them) -> the names
        configured here: what a producer writes to, and what the worker reads."""
        return {
            "orders": self.topic_orders,
            "complaints": self.topic_complaints,
            "interactions": self.topic_interactions,
        }


def variable(field: str) -> str:
    """The environment variable that sets `field`."""
    return f"{ENV_PREFIX}{field.upper()}"


def load_settings() -> Settings:
    """Settings from the environment, or `SettingsError` naming each variable at fault."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False, include_input=False):
            where = variable(str(error["loc"][0])) if error["loc"] else "settings"
            reason = error["msg"].removeprefix("Value error, ")
            problems.append(f"{where}: {reason}")
        raise SettingsError("; ".join(problems)) from None


def unknown_variables(names: Iterable[str]) -> list[str]:
    """A warning for each GRADESTREAM_* name that no setting reads (a misspelling is
    otherwise silently ignored), with the closest setting it may have meant."""
    known = {variable(field) for field in Settings.model_fields} | OTHER_VARIABLES
    warnings = []
    for name in sorted(names):
        upper = name.upper()  # pydantic-settings reads names case-insensitively
        if not upper.startswith(ENV_PREFIX) or upper in known:
            continue
        # Compared without the prefix they all share, which would make anything look close.
        suffixes = [k.removeprefix(ENV_PREFIX) for k in known]
        close = difflib.get_close_matches(upper.removeprefix(ENV_PREFIX), suffixes, n=1)
        hint = f" (did you mean {ENV_PREFIX}{close[0]}?)" if close else ""
        warnings.append(f"{name} is not a gradestream setting and is ignored{hint}")
    return warnings
