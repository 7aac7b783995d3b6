"""The Kafka topics gradestream uses: what it expects, creating them, comparing with a cluster.

`gradestream topics create` creates every topic up front, so that a production cluster can
run with `auto.create.topics.enable=false` and the worker's principal needs no CREATE
permission; `gradestream topics describe` compares the cluster with what the settings
expect and exits non-zero on a mismatch. Names and the partition count come from
`streams.settings.Settings` (GRADESTREAM_* variables), as for the worker.

| topic (setting) | role | configs set at creation |
|---|---|---|
| orders, complaints, interactions | input | none: broker defaults (producers own them) |
| tier-changes, churn-risk, lifecycle-changes, tier-warnings | events | retention.ms = 30 days |
| customer-grades | latest grade per customer | cleanup.policy = compact |
| customer-grades-shadow | the shadow policy's, with one only | cleanup.policy = compact |
| gradestream-dlq | dead letters | retention.ms = 14 days (they hold personal data) |
| gradestream-ticks | internal wake-ups | retention.ms = 1 day |
| {app_id}-customers-changelog | the table's changelog | cleanup.policy = compact |

Every topic gets `PARTITIONS` partitions: a customer's inputs, ticks and table state must
share a partition number (Faust refuses to start otherwise), and a topic's partition count
cannot be lowered later. `describe` fails on a missing topic, a different partition count
or a different cleanup policy; a different retention is shown but accepted (an operator's
choice). Creating is idempotent: an existing topic is reported, never altered.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from rich.console import Console
from rich.table import Table

from streams.settings import Settings

__all__ = [
    "CreateResult",
    "TopicSpec",
    "TopicState",
    "admin_client",
    "compare",
    "create_command",
    "create_topics",
    "describe_command",
    "describe_topics",
    "expected_topics",
]

DAY_MS = 24 * 3600 * 1000
OUTPUT_RETENTION_MS = 30 * DAY_MS
DLQ_RETENTION_MS = 14 * DAY_MS
TICKS_RETENTION_MS = 1 * DAY_MS
# Kafka error codes the commands interpret (the rest are reported as they come).
TOPIC_ALREADY_EXISTS = 36
# The configs `describe` reads and shows.
SHOWN_CONFIGS = ("cleanup.policy", "retention.ms")


@dataclass(frozen=True)
class TopicSpec:
    """A topic as the settings expect it."""

    name: str
    roles: tuple[str, ...]
    partitions: int
    configs: dict[str, str] = field(default_factory=dict)

    @property
    def cleanup_policy(self) -> str:
        return self.configs.get("cleanup.policy", "delete")


def changelog_topic(settings: Settings) -> str:
    """The Faust table's changelog: `{app_id}-{table}-changelog` (the table is `customers`)."""
    return f"{settings.app_id}-customers-changelog"


def expected_topics(settings: Settings) -> list[TopicSpec]:
    """Every topic the worker reads or writes, once each (the inputs may share one topic)."""
    retention = {"retention.ms": str(OUTPUT_RETENTION_MS)}
    wanted: list[tuple[str, str, dict[str, str]]] = [
        (settings.topic_orders, "input: orders", {}),
        (settings.topic_complaints, "input: complaints", {}),
        (settings.topic_interactions, "input: interactions", {}),
        (settings.topic_tier_changes, "output: tier changes", retention),
        (settings.topic_churn_risk, "output: churn risk", retention),
        (settings.topic_lifecycle_changes, "output: lifecycle changes", retention),
        (settings.topic_tier_warnings, "output: tier warnings", retention),
        (settings.topic_customer_grades, "output: latest grades", {"cleanup.policy": "compact"}),
        (settings.topic_dead_letters, "dead letters", {"retention.ms": str(DLQ_RETENTION_MS)}),
        (settings.topic_ticks, "internal: sweep ticks", {"retention.ms": str(TICKS_RETENTION_MS)}),
        (changelog_topic(settings), "internal: table changelog", {"cleanup.policy": "compact"}),
    ]
    if settings.shadow_policy is not None:
        compact = {"cleanup.policy": "compact"}
        wanted.append((settings.topic_shadow_grades, "output: shadow policy's grades", compact))
    specs: dict[str, TopicSpec] = {}
    for name, role, configs in wanted:
        if name in specs:
            # One topic for several roles (all inputs on one topic): configs must agree.
            known = specs[name]
            if known.configs != configs:
                raise ValueError(
                    f"topic {name!r} is configured for {', '.join(known.roles)} and {role}, "
                    "which need different configs; give them different names"
                )
            specs[name] = TopicSpec(name, (*known.roles, role), known.partitions, known.configs)
        else:
            specs[name] = TopicSpec(name, (role,), settings.partitions, dict(configs))
    return list(specs.values())


def admin_client(settings: Settings) -> AIOKafkaAdminClient:
    """An admin client with the worker's connection settings (security included)."""
    return AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers, **settings.kafka_client_options()
    )


@dataclass(frozen=True)
class CreateResult:
    name: str
    outcome: str  # "created", "exists" or "failed"
    message: str = ""


async def create_topics(
    admin: AIOKafkaAdminClient, specs: list[TopicSpec], replication_factor: int | None = None
) -> list[CreateResult]:
    """Create the topics that do not exist; existing ones are reported, not altered.

    replication_factor None: 3, or the number of brokers when there are fewer.
    """
    if replication_factor is None:
        brokers = len((await admin.describe_cluster())["brokers"])
        replication_factor = max(1, min(3, brokers))
    response = await admin.create_topics(
        [
            NewTopic(
                spec.name,
                num_partitions=spec.partitions,
                replication_factor=replication_factor,
                topic_configs=spec.configs,
            )
            for spec in specs
        ]
    )
    errors = {e["topic"]: e for e in response.to_object()["topic_errors"]}
    results = []
    for spec in specs:
        error = errors.get(spec.name, {"error_code": 0})
        code = error["error_code"]
        if code == 0:
            results.append(CreateResult(spec.name, "created"))
        elif code == TOPIC_ALREADY_EXISTS:
            results.append(CreateResult(spec.name, "exists"))
        else:
            message = error.get("error_message") or f"Kafka error code {code}"
            results.append(CreateResult(spec.name, "failed", message))
    return results


@dataclass(frozen=True)
class TopicState:
    """One expected topic compared with the cluster."""

    spec: TopicSpec
    exists: bool
    partitions: int | None = None
    configs: dict[str, str] = field(default_factory=dict)

    @property
    def problems(self) -> list[str]:
        """What is wrong; empty when the topic is as expected."""
        if not self.exists:
            return ["missing"]
        found = []
        if self.partitions != self.spec.partitions:
            found.append(f"{self.partitions} partitions, expected {self.spec.partitions}")
        policy = self.configs.get("cleanup.policy", "delete")
        if set(policy.split(",")) != set(self.spec.cleanup_policy.split(",")):
            found.append(f"cleanup.policy {policy}, expected {self.spec.cleanup_policy}")
        return found

    @property
    def ok(self) -> bool:
        return not self.problems


async def describe_topics(admin: AIOKafkaAdminClient, specs: list[TopicSpec]) -> list[TopicState]:
    """Read partitions and configs of every expected topic from the cluster."""
    # Listing all topics, not asking for these by name: a metadata request naming a
    # missing topic makes a broker with auto.create.topics.enable create it.
    existing = set(await admin.list_topics())
    present = [spec.name for spec in specs if spec.name in existing]
    metadata = {t["topic"]: t for t in await admin.describe_topics(present)} if present else {}
    configs: dict[str, dict[str, str]] = {}
    if present:
        responses = await admin.describe_configs(
            [
                ConfigResource(ConfigResourceType.TOPIC, name, dict.fromkeys(SHOWN_CONFIGS))
                for name in present
            ]
        )
        for response in responses:
            for resource in response.to_object()["resources"]:
                configs[resource["resource_name"]] = {
                    entry["config_names"]: entry["config_value"]
                    for entry in resource["config_entries"]
                }
    states = []
    for spec in specs:
        if spec.name in present:
            partitions = len(metadata[spec.name]["partitions"])
            states.append(TopicState(spec, True, partitions, configs.get(spec.name, {})))
        else:
            states.append(TopicState(spec, False))
    return states


def compare(states: list[TopicState]) -> bool:
    """True when every expected topic exists as expected."""
    return all(state.ok for state in states)


# -- the `gradestream topics` commands (streams/cli.py parses the arguments) ----------------


async def _with_admin(settings: Settings, work: Any) -> Any:
    admin = admin_client(settings)
    await admin.start()
    try:
        return await work(admin)
    finally:
        await admin.close()


def create_command(settings: Settings, replication_factor: int | None, out: Console) -> bool:
    """`gradestream topics create`: create, print a table; False if a creation failed."""
    specs = expected_topics(settings)
    results: list[CreateResult] = asyncio.run(
        _with_admin(settings, lambda admin: create_topics(admin, specs, replication_factor))
    )
    table = Table(title=f"topics on {settings.kafka_bootstrap_servers}")
    for column in ("topic", "role", "partitions", "configs", "result"):
        table.add_column(column)
    colour = {"created": "green", "exists": "cyan", "failed": "red"}
    for spec, result in zip(specs, results, strict=True):
        configs = ", ".join(f"{k}={v}" for k, v in spec.configs.items()) or "-"
        outcome = result.outcome + (f": {result.message}" if result.message else "")
        table.add_row(
            spec.name,
            "; ".join(spec.roles),
            str(spec.partitions),
            configs,
            f"[{colour[result.outcome]}]{outcome}[/]",
        )
    out.print(table)
    return all(result.outcome != "failed" for result in results)


def describe_command(settings: Settings, out: Console) -> bool:
    """`gradestream topics describe`: print found / expected per topic; False on a mismatch."""
    specs = expected_topics(settings)
    states: list[TopicState] = asyncio.run(
        _with_admin(settings, lambda admin: describe_topics(admin, specs))
    )
    table = Table(title=f"topics on {settings.kafka_bootstrap_servers}: found / expected")
    for column in ("topic", "role", "exists", "partitions", "cleanup.policy", "retention.ms"):
        table.add_column(column)
    table.add_column("status")
    for state in states:
        spec = state.spec
        wanted_retention = spec.configs.get("retention.ms", "(broker default)")
        table.add_row(
            spec.name,
            "; ".join(spec.roles),
            "yes" if state.exists else "[red]no[/]",
            f"{state.partitions if state.exists else '-'} / {spec.partitions}",
            f"{state.configs.get('cleanup.policy', '-')} / {spec.cleanup_policy}",
            f"{state.configs.get('retention.ms', '-')} / {wanted_retention}",
            "[green]ok[/]" if state.ok else f"[red]{'; '.join(state.problems)}[/]",
        )
    out.print(table)
    # The mismatches again as plain lines: a table cell wraps on a narrow terminal, and
    # these are what an operator copies or greps.
    for state in states:
        if not state.ok:
            out.print(f"{state.spec.name}: {'; '.join(state.problems)}", soft_wrap=True)
    return compare(states)
