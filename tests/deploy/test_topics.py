"""`gradestream topics create` / `describe` against the real broker, on topic names of their own."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from typer.testing import CliRunner

from streams.cli import app
from streams.settings import Settings
from streams.topics import changelog_topic, expected_topics

pytestmark = pytest.mark.integration

TOPIC_SETTINGS = (
    "orders",
    "complaints",
    "interactions",
    "tier_changes",
    "churn_risk",
    "lifecycle_changes",
    "tier_warnings",
    "customer_grades",
    "dead_letters",
    "ticks",
)


async def _admin(bootstrap: str) -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    return admin


async def _topics_with_prefix(bootstrap: str, prefix: str) -> dict[str, int]:
    admin = await _admin(bootstrap)
    try:
        names = [t for t in await admin.list_topics() if t.startswith(prefix)]
        described = await admin.describe_topics(names) if names else []
        return {t["topic"]: len(t["partitions"]) for t in described}
    finally:
        await admin.close()


async def _delete_with_prefix(bootstrap: str, prefix: str) -> None:
    admin = await _admin(bootstrap)
    try:
        names = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()


@pytest.fixture
def prefix(kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """GRADESTREAM_* settings naming topics unique to this test; they are deleted after."""
    unique = f"test-topics-{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("GRADESTREAM_KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    monkeypatch.setenv("GRADESTREAM_APP_ID", unique)
    monkeypatch.setenv("GRADESTREAM_PARTITIONS", "3")
    monkeypatch.setenv("GRADESTREAM_TOPICS_REPLICATION_FACTOR", "1")
    for name in TOPIC_SETTINGS:
        monkeypatch.setenv(f"GRADESTREAM_TOPIC_{name.upper()}", f"{unique}-{name}")
    try:
        yield unique
    finally:
        asyncio.run(_delete_with_prefix(kafka_bootstrap, unique))


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "250"})
    return result.exit_code, result.output


def test_create_is_idempotent_and_describe_agrees(kafka_bootstrap: str, prefix: str) -> None:
    code, out = cli("topics", "describe")
    assert code == 1, out
    assert "missing" in out
    # describe must not create anything (a broker may auto-create topics it is asked about)
    assert asyncio.run(_topics_with_prefix(kafka_bootstrap, prefix)) == {}

    code, out = cli("topics", "create")
    assert code == 0, out
    expected = {spec.name for spec in expected_topics(Settings())}
    assert len(expected) == 11
    assert out.count("created") == 11, out
    assert asyncio.run(_topics_with_prefix(kafka_bootstrap, prefix)) == dict.fromkeys(expected, 3)

    code, out = cli("topics", "create")
    assert code == 0, out
    assert out.count("exists") == 11, out
    assert "created" not in out, out

    code, out = cli("topics", "describe")
    assert code == 0, out
    assert out.count(" ok ") == 11, out
    assert "compact / compact" in out


def test_describe_detects_a_wrong_partition_count_and_cleanup_policy(
    kafka_bootstrap: str, prefix: str
) -> None:
    async def precreate() -> None:
        admin = await _admin(kafka_bootstrap)
        try:
            await admin.create_topics(
                [
                    NewTopic(f"{prefix}-orders", 1, 1),
                    NewTopic(
                        f"{prefix}-customer_grades",
                        3,
                        1,
                        topic_configs={"cleanup.policy": "delete"},
                    ),
                ]
            )
        finally:
            await admin.close()

    asyncio.run(precreate())
    code, out = cli("topics", "create")
    assert code == 0, out  # existing topics are reported, not an error...
    assert out.count("exists") == 2, out
    assert out.count("created") == 9, out

    code, out = cli("topics", "describe")  # ...but they do not match
    assert code == 1, out
    assert f"{prefix}-orders: 1 partitions, expected 3\n" in out
    assert f"{prefix}-customer_grades: cleanup.policy delete, expected compact" in out
    assert "does not match" in out


def test_expected_topics_share_one_input_topic_and_refuse_conflicting_configs() -> None:
    one = Settings(topic_orders="events", topic_complaints="events", topic_interactions="events")
    specs = expected_topics(one)
    assert [s.name for s in specs].count("events") == 1
    assert specs[0].roles == ("input: orders", "input: complaints", "input: interactions")
    assert changelog_topic(one) == "gradestream-customers-changelog"
    grades = next(s for s in specs if s.name == "customer-grades")
    assert grades.configs == {"cleanup.policy": "compact"}
    with pytest.raises(ValueError, match="need different configs"):
        expected_topics(Settings(topic_customer_grades="tier-changes"))


def test_the_shadow_grades_topic_is_expected_with_a_shadow_policy_only(tmp_path: Path) -> None:
    names = [s.name for s in expected_topics(Settings())]
    assert "tier-warnings" in names
    assert "customer-grades-shadow" not in names
    policy = tmp_path / "shadow.toml"
    policy.write_text("")  # read by the worker; the topics need only its presence
    specs = expected_topics(Settings(shadow_policy=policy))
    shadow = next(s for s in specs if s.name == "customer-grades-shadow")
    assert shadow.configs == {"cleanup.policy": "compact"}
