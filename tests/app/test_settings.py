"""Settings: read from GRADESTREAM_* variables, refused when wrong, secrets never shown."""

from __future__ import annotations

import faust
import pytest
from pydantic import ValidationError

from streams.app.clients import faust_credentials
from streams.settings import Settings

SECRET = "s3cr3t-Pa55"  # noqa: S105 (a test value)


def test_secrets_do_not_print(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRADESTREAM_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("GRADESTREAM_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("GRADESTREAM_KAFKA_SASL_USERNAME", "grader")
    monkeypatch.setenv("GRADESTREAM_KAFKA_SASL_PASSWORD", SECRET)
    monkeypatch.setenv("GRADESTREAM_REDIS_URL", f"rediss://:{SECRET}@redis.internal:6380/0")
    monkeypatch.setenv("GRADESTREAM_REDIS_PASSWORD", SECRET)
    settings = Settings()
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings.model_dump())
    assert settings.kafka_sasl_password is not None
    assert settings.kafka_sasl_password.get_secret_value() == SECRET

    credentials = faust_credentials(settings)["broker_credentials"]
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.password == SECRET
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    assert credentials.ssl_context is not None  # SASL over TLS
    assert SECRET not in repr(credentials)


def test_plaintext_has_no_credentials() -> None:
    assert faust_credentials(Settings()) == {}


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("GRADESTREAM_CLOCK", "sundial"),
        ("GRADESTREAM_WEB_PORT", "70000"),
        ("GRADESTREAM_KAFKA_SECURITY_PROTOCOL", "SASL_CARRIER_PIGEON"),
        ("GRADESTREAM_PARTITIONS", "0"),
    ],
)
def test_a_bad_value_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert variable.removeprefix("GRADESTREAM_").lower() in str(caught.value)
