"""decode(): bytes in, a Decoded event or a Rejection with a stable code out."""

from __future__ import annotations

import base64
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams import contracts
from streams.contracts import (
    MAX_DEPTH,
    MAX_VALUE_BYTES,
    REJECTION_CODES,
    ContractViolation,
    Decoded,
    SchemaLoadError,
    dead_letter,
    decode,
    validate_output,
)
from streams.core.errors import Rejection

ORDER: dict[str, Any] = {
    "event_id": "evt-1",
    "customer_id": "cust-42",
    "occurred_at": "2024-03-01T10:15:00Z",
    "type": "order_placed",
    "order_id": "ord-1",
    "amount": 59.99,
    "currency": "USD",
}
GOOD = orjson.dumps(ORDER)


def order(**changes: Any) -> bytes:
    return orjson.dumps({**ORDER, **changes})


def test_valid_event_decodes_with_its_key() -> None:
    result = decode(GOOD, topic="orders", key=b"cust-42")
    assert result == Decoded(ORDER, "orders", "cust-42", False)


def test_topic_comes_from_the_type_when_not_given() -> None:
    result = decode(GOOD)
    assert isinstance(result, Decoded)
    assert result.topic == "orders"


@pytest.mark.parametrize(
    ("value", "topic", "key", "code", "message"),
    [
        pytest.param(
            GOOD[:-1], "orders", None, "invalid_json", "unexpected end of data", id="truncated"
        ),
        pytest.param(b"", "orders", None, "invalid_json", "", id="empty"),
        pytest.param(GOOD[:40], None, None, "invalid_json", "line 1 column", id="cut-mid-string"),
        pytest.param(
            order(text="caf\u00e9").replace("é".encode(), b"\xe9"),
            None,
            None,
            "invalid_json",
            "not valid UTF-8",
            id="latin-1-byte",
        ),
        pytest.param(b"\xff\xfe{}", None, None, "invalid_json", "at byte 0", id="utf16-bom"),
        pytest.param(GOOD.replace(b"59.99", b"NaN"), None, None, "invalid_json", "", id="nan"),
        pytest.param(GOOD.replace(b"59.99", b"Infinity"), None, None, "invalid_json", "", id="inf"),
        pytest.param(
            GOOD.replace(b"59.99", b"-Infinity"), None, None, "invalid_json", "", id="-inf"
        ),
        pytest.param(GOOD + b"x", None, None, "invalid_json", "after document", id="trailing"),
        pytest.param(GOOD + b"\n" + GOOD, None, None, "invalid_json", "", id="two-docs"),
        pytest.param(
            b" " * (MAX_VALUE_BYTES + 1), None, None, "too_large", "65537 bytes", id="huge"
        ),
        pytest.param(
            order(blob="x" * MAX_VALUE_BYTES), None, None, "too_large", "limit", id="huge-field"
        ),
        pytest.param(b"[" * 5000 + b"]" * 5000, None, None, "too_deep", "", id="deep-array"),
        pytest.param(
            order(extra=orjson.loads(b"[" * 40 + b"]" * 40)),
            None,
            None,
            "too_deep",
            "",
            id="deep-extra-field",
        ),
        pytest.param(b"[]", None, None, "not_an_object", "array", id="array"),
        pytest.param(b'"order_placed"', None, None, "not_an_object", "string", id="string"),
        pytest.param(b"42", None, None, "not_an_object", "number", id="number"),
        pytest.param(b"null", None, None, "not_an_object", "null", id="null"),
        pytest.param(b"true", None, None, "not_an_object", "boolean", id="bool"),
        pytest.param(b"{}", None, None, "schema_violation", "/type: required", id="empty-object"),
        pytest.param(
            order(type=None), None, None, "schema_violation", "/type: a JSON null", id="null-type"
        ),
        pytest.param(
            order(type="order_exploded"),
            None,
            None,
            "unknown_type",
            "'order_exploded'",
            id="unknown-type",
        ),
        pytest.param(order(type="ORDER_PLACED"), None, None, "unknown_type", "", id="type-case"),
        pytest.param(
            order(type="page_view"),
            "orders",
            None,
            "wrong_topic",
            "'interactions', not 'orders'",
            id="wrong-topic",
        ),
        pytest.param(
            GOOD,
            "complaints",
            None,
            "wrong_topic",
            "'orders', not 'complaints'",
            id="order-on-complaints",
        ),
        pytest.param(
            order(amount=-1),
            "orders",
            None,
            "schema_violation",
            "/amount: -1 is less than the minimum of 0",
            id="negative-amount",
        ),
        pytest.param(
            order(amount="59.99"),
            None,
            None,
            "schema_violation",
            "/amount: must be a number, not a string",
            id="amount-string",
        ),
        pytest.param(
            order(amount=True), None, None, "schema_violation", "/amount:", id="amount-bool"
        ),
        pytest.param(
            order(amount=None), None, None, "schema_violation", "/amount:", id="amount-null"
        ),
        pytest.param(
            order(customer_id=42),
            None,
            None,
            "schema_violation",
            "/customer_id:",
            id="customer-id-int",
        ),
        pytest.param(
            order(customer_id=""),
            None,
            None,
            "schema_violation",
            "/customer_id:",
            id="customer-id-empty",
        ),
        pytest.param(
            order(occurred_at="2024-03-01T10:15:00"),
            None,
            None,
            "schema_violation",
            "/occurred_at:",
            id="naive-time",
        ),
        pytest.param(
            order(occurred_at="2024-13-01T10:15:00Z"),
            None,
            None,
            "schema_violation",
            "/occurred_at:",
            id="month-13",
        ),
        pytest.param(
            order(occurred_at="2024-03-01T10:15:00+05"),
            None,
            None,
            "schema_violation",
            "/occurred_at:",
            id="short-offset",
        ),
        pytest.param(
            order(items="3"), None, None, "schema_violation", "/items:", id="items-string"
        ),
        pytest.param(
            order(event_id="e" * 129), None, None, "schema_violation", "/event_id:", id="long-id"
        ),
        pytest.param(GOOD, "orders", b"cust-43", "key_mismatch", "'cust-43'", id="key-mismatch"),
        pytest.param(GOOD, None, b"\xff", "key_mismatch", "b'\\xff'", id="key-not-utf8"),
        pytest.param(GOOD, None, b"cust-42 ", "key_mismatch", "", id="key-trailing-space"),
    ],
)
def test_rejections(
    value: bytes, topic: str | None, key: bytes | None, code: str, message: str
) -> None:
    result = decode(value, topic=topic, key=key)
    assert isinstance(result, Rejection), result
    assert result.code == code, result
    assert message in result.message, result
    assert result.code in REJECTION_CODES
    assert 0 < len(result.message) <= 300


@pytest.mark.parametrize("key", [None, b""])
def test_missing_key_is_rekeyed_by_customer_id(key: bytes | None) -> None:
    result = decode(GOOD, topic="orders", key=key)
    assert isinstance(result, Decoded)
    assert (result.key, result.rekeyed) == ("cust-42", True)


def test_non_ascii_key_matches_its_utf8_bytes() -> None:
    result = decode(order(customer_id="kundin-ö"), key="kundin-ö".encode())
    assert isinstance(result, Decoded)
    assert not result.rekeyed


def test_schema_comes_before_the_key_rule() -> None:
    # A broken body is reported as such even when its key is wrong too.
    result = decode(order(amount=-1), key=b"someone-else")
    assert isinstance(result, Rejection)
    assert result.code == "schema_violation"


def test_extra_fields_are_accepted_and_kept() -> None:
    result = decode(order(coupon={"code": "SPRING", "stack": [1, 2]}))
    assert isinstance(result, Decoded)
    assert result.event["coupon"] == {"code": "SPRING", "stack": [1, 2]}


def test_extra_field_at_max_depth_is_accepted() -> None:
    nested: Any = []
    for _ in range(MAX_DEPTH - 2):  # the event is depth 1, the list inside it depth 2
        nested = [nested]
    assert isinstance(decode(order(extra=nested)), Decoded)
    assert isinstance(decode(order(extra=[nested])), Rejection)


@pytest.mark.parametrize(
    "when", ["1970-01-01T00:00:00Z", "2999-12-31T23:59:59Z", "0001-01-01T00:00:00+14:00"]
)
def test_far_past_and_future_are_left_to_the_core(when: str) -> None:
    assert isinstance(decode(order(occurred_at=when)), Decoded)


def test_unknown_topic_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="not an input topic"):
        decode(GOOD, topic="order")


def test_long_values_are_clipped_in_messages() -> None:
    result = decode(order(customer_id="c" * 10_000))
    assert isinstance(result, Rejection)
    assert result.message.startswith("/customer_id:")
    assert len(result.message) <= 300


def test_every_topic_has_types_and_every_type_one_topic() -> None:
    assert set(contracts.TOPIC_OF_TYPE.values()) == set(contracts.INPUT_TOPICS)
    assert contracts.TOPIC_OF_TYPE["survey_response"] == "interactions"
    assert contracts.TOPIC_OF_TYPE["complaint_escalated"] == "complaints"
    assert len(contracts.TOPIC_OF_TYPE) == 3 + 3 + 12


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
# Shared CI machines are slow at times; the properties matter, not the timing.
relaxed = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


@relaxed
@given(st.binary(max_size=300))
def test_never_raises_on_any_bytes(value: bytes) -> None:
    result = decode(value, topic="orders", key=value[:8] or None)
    assert isinstance(result, Decoded | Rejection)


@relaxed
@given(st.dictionaries(st.sampled_from(sorted(ORDER)), json_scalars))
def test_never_raises_on_any_field_values(changes: dict[str, Any]) -> None:
    result = decode(order(**changes), key=b"cust-42")
    if isinstance(result, Rejection):
        assert result.code in REJECTION_CODES
    else:
        assert result.event["customer_id"] == "cust-42"


@relaxed
@given(
    st.sampled_from(sorted(contracts.TOPIC_OF_TYPE)),
    st.sampled_from(contracts.INPUT_TOPICS),
)
def test_topic_rule_holds_for_every_type(event_type: str, topic: str) -> None:
    result = decode(order(type=event_type), topic=topic)
    if contracts.TOPIC_OF_TYPE[event_type] != topic:
        assert isinstance(result, Rejection)
        assert result.code == "wrong_topic"
    else:
        assert not (isinstance(result, Rejection) and result.code == "wrong_topic")


@relaxed
@given(
    st.integers(min_value=0, max_value=10),
    st.integers(min_value=1, max_value=5),
    st.integers(min_value=1, max_value=7),
)
def test_survey_scores_in_range_are_accepted(nps: int, csat: int, ces: int) -> None:
    event = {**ORDER, "type": "survey_response", "nps": nps, "csat": csat, "ces": ces}
    assert isinstance(decode(orjson.dumps(event)), Decoded)


# ---- dead letters


def test_dead_letter_from_kafka_keeps_bytes_key_and_reason() -> None:
    value = b'{"amount": -1'
    rejection = decode(value, topic="orders")
    assert isinstance(rejection, Rejection)
    source = {"topic": "orders", "partition": 2, "offset": 99}
    record = dead_letter(value, b"cust-42", source, rejection)
    assert base64.b64decode(record["value_b64"]) == value
    assert base64.b64decode(record["key_b64"]) == b"cust-42"
    assert record["value_size"] == len(value)
    assert record["value_truncated"] is False
    assert record["source"] == source
    assert record["rejection"] == {"code": "invalid_json", "message": rejection.message}
    validate_output("gradestream-dlq", record)


def test_dead_letter_from_a_file_is_deterministic() -> None:
    args = (b"\xff", None, {"file": "in.jsonl", "line": 3}, Rejection("invalid_json", "bad"))
    first = orjson.dumps(dead_letter(*args))
    assert first == orjson.dumps(dead_letter(*args))
    assert orjson.loads(first)["key_b64"] is None


def test_dead_letter_truncates_what_kafka_could_not_carry() -> None:
    value = b"x" * (contracts.MAX_DLQ_VALUE_BYTES + 10)
    record = dead_letter(value, None, {"file": "f", "line": 1}, Rejection("too_large", "big"))
    assert record["value_truncated"] is True
    assert record["value_size"] == len(value)
    assert len(base64.b64decode(record["value_b64"])) == contracts.MAX_DLQ_VALUE_BYTES


def test_dead_letter_accepts_core_rejections() -> None:
    rejection = Rejection("unknown_currency", "/currency: no rate for 'JPY'")
    dead_letter(GOOD, b"cust-42", {"topic": "orders", "partition": 0, "offset": 0}, rejection)


@pytest.mark.parametrize(
    ("source", "rejection"),
    [
        ({"topic": "orders", "partition": 0}, Rejection("invalid_json", "x")),
        ({"file": "f", "line": 0}, Rejection("invalid_json", "x")),
        ({"topic": "orders", "partition": 0, "offset": 0}, Rejection("Bad Code", "x")),
        ({"topic": "orders", "partition": 0, "offset": 0}, Rejection("invalid_json", "")),
    ],
)
def test_dead_letter_refuses_to_build_an_invalid_record(
    source: dict[str, Any], rejection: Rejection
) -> None:
    with pytest.raises(ContractViolation):
        dead_letter(b"{}", None, source, rejection)


# ---- validate_output and the loader


def test_validate_output_names_topic_and_path() -> None:
    with pytest.raises(ContractViolation, match=r"^gradestream-dlq: /value_size: -1 is less"):
        validate_output(
            "gradestream-dlq",
            {
                "value_b64": "",
                "value_size": -1,
                "value_truncated": False,
                "key_b64": None,
                "source": {"file": "f", "line": 1},
                "rejection": {"code": "x", "message": "y"},
            },
        )


def test_validate_output_unknown_schema() -> None:
    with pytest.raises(KeyError, match="no schema 'tier-change'"):
        validate_output("tier-change", {})


def _write(directory: Path, name: str, doc: dict[str, Any]) -> None:
    (directory / f"{name}.json").write_bytes(orjson.dumps(doc))


DRAFT = "https://json-schema.org/draft/2020-12/schema"


def test_loader_resolves_relative_refs_between_files(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "common",
        {"$schema": DRAFT, "$defs": {"cents": {"type": "integer", "minimum": 0}}},
    )
    # One file with an $id under another base, one with none: both find common.json.
    _write(
        tmp_path,
        "a",
        {
            "$schema": DRAFT,
            "$id": "https://example.invalid/x/a.json",
            "properties": {"c": {"$ref": "common.json#/$defs/cents"}},
        },
    )
    _write(
        tmp_path,
        "b",
        {"$schema": DRAFT, "properties": {"c": {"$ref": "./common.json#/$defs/cents"}}},
    )
    docs, _, validators = contracts._load(tmp_path)
    assert set(docs) == {"a", "b", "common"}
    for name in ("a", "b"):
        assert validators[name].is_valid({"c": 5})
        assert not validators[name].is_valid({"c": -5})


def test_loader_refuses_a_dangling_ref(tmp_path: Path) -> None:
    _write(tmp_path, "a", {"$schema": DRAFT, "$ref": "missing.json"})
    with pytest.raises(SchemaLoadError, match=r"missing\.json"):
        contracts._load(tmp_path)


def test_loader_refuses_an_invalid_schema(tmp_path: Path) -> None:
    _write(tmp_path, "a", {"$schema": DRAFT, "type": "no-such-type"})
    with pytest.raises(SchemaLoadError, match=r"a\.json"):
        contracts._load(tmp_path)


def test_loader_refuses_an_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(SchemaLoadError, match="no JSON Schemas"):
        contracts._load(tmp_path)


def test_date_time_format_is_enforced() -> None:
    # The pattern alone would let 2024-02-30 through; only format checking stops it.
    result = decode(order(occurred_at="2024-02-30T10:15:00Z"))
    assert isinstance(result, Rejection)
    assert result.message.startswith("/occurred_at:")


@st.composite
def rfc3339(draw: st.DrawFn) -> str:
    """Timestamps across the whole range the schema could let through, extremes included."""
    year = draw(st.integers(0, 9999))
    month, day = draw(st.integers(1, 12)), draw(st.integers(1, 31))
    hour, minute, second = (
        draw(st.integers(0, 23)),
        draw(st.integers(0, 59)),
        draw(st.integers(0, 60)),
    )
    fraction = draw(st.sampled_from(["", ".5", ".123456", ".123456789"]))
    offset = draw(
        st.sampled_from(["Z", "z"])
        | st.builds(
            "{}{:02d}:{:02d}".format,
            st.sampled_from("+-"),
            st.integers(0, 24),
            st.integers(0, 59),
        )
    )
    return (
        f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}{fraction}{offset}"
    )


@relaxed
@given(rfc3339())
def test_every_accepted_timestamp_is_one_python_can_read(text: str) -> None:
    # What the boundary lets through, the core must be able to parse into epoch seconds.
    result = decode(order(occurred_at=text))
    if isinstance(result, Decoded):
        parsed = datetime.fromisoformat(text)
        assert parsed.tzinfo is not None
        parsed.timestamp()


@pytest.mark.parametrize("text", ["0000-01-01T00:00:00Z", "2024-03-01T10:15:00.1234567890Z"])
def test_timestamps_python_cannot_read_are_refused(text: str) -> None:
    result = decode(order(occurred_at=text))
    assert isinstance(result, Rejection)
    assert result.message.startswith("/occurred_at:")
