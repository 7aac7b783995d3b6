"""Free text (a complaint's `text`) never reaches a rejection message (issue 16, privacy).

The dead letter keeps the original bytes by design; its `rejection.message` names the
field and the rule, never the value, whatever shape the text arrives in.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.contracts import FREE_TEXT_FIELDS, MAX_DEPTH, dead_letter, decode
from streams.core.errors import Rejection

MARKER = "SECRET"  # what the complaint text says; no message may contain it
COMPLAINT: dict[str, Any] = {
    "event_id": "e1",
    "customer_id": "c1",
    "occurred_at": "2024-03-01T10:00:00Z",
    "type": "complaint_opened",
    "complaint_id": "k1",
    "category": "delivery",
    "severity": "low",
}


def nested(depth: int) -> Any:
    value: Any = MARKER
    for _ in range(depth):
        value = [value]
    return value


def refused(value: bytes) -> Rejection:
    result = decode(value, topic="complaints", key=b"c1")
    assert isinstance(result, Rejection), result
    # What a consumer of the dead letters reads: the message as it is written there.
    record = dead_letter(value, b"c1", {"topic": "complaints", "partition": 0, "offset": 0}, result)
    assert record["rejection"]["message"] == result.message
    return result


def test_free_text_fields_come_from_the_schemas() -> None:
    assert "text" in FREE_TEXT_FIELDS


def test_the_reported_record_names_the_field_and_the_rule_only() -> None:
    # The exact record of issue 16.
    value = (
        b'{"event_id":"e1","customer_id":"c1","occurred_at":"2024-03-01T10:00:00Z",'
        b'"type":"complaint_opened","complaint_id":"k1","category":"delivery",'
        b'"severity":"low","text":["SECRET"]}'
    )
    rejection = refused(value)
    assert rejection == Rejection("schema_violation", "/text: must be a string, not an array")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param([MARKER], "/text: must be a string, not an array", id="array"),
        pytest.param({"note": MARKER}, "/text: must be a string, not an object", id="object"),
        pytest.param({MARKER: 1}, "/text: must be a string, not an object", id="object-key"),
        pytest.param(MARKER * 2000, "/text: longer than 8000 characters", id="too-long"),
        pytest.param(
            MARKER + "\u00e9" * 8000, "/text: longer than 8000 characters", id="too-long-non-ascii"
        ),
        pytest.param(
            nested(MAX_DEPTH + 5), f"nested deeper than {MAX_DEPTH} levels", id="too-deep"
        ),
        pytest.param(nested(3), "/text: must be a string, not an array", id="nested"),
    ],
)
def test_a_bad_text_is_refused_without_quoting_it(text: Any, message: str) -> None:
    rejection = refused(orjson.dumps({**COMPLAINT, "text": text}))
    assert rejection.message == message
    assert MARKER not in rejection.message


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(b'{"type":"complaint_opened","text":"SECRET', id="truncated"),
        pytest.param(b'{"type":"complaint_opened","text":"SEC\x01RET"}', id="control-char"),
        pytest.param(b'{"type":"complaint_opened","text":"SECRET\\x"}', id="bad-escape"),
        pytest.param(b'{"type":"complaint_opened","text":SECRET}', id="unquoted"),
        pytest.param(b'{"type":"complaint_opened","text":"SECRET"}x', id="trailing"),
        pytest.param(b'{"type":"complaint_opened","text":"SECRET\xff"}', id="bad-utf8"),
        pytest.param(b'{"type":"complaint_opened","text":"\\ud800SECRET"}', id="lone-surrogate"),
        pytest.param(b'{"type":"complaint_opened","text":NaN}', id="nan"),
        pytest.param(orjson.dumps({**COMPLAINT, "text": MARKER * 20_000}), id="too-large-value"),
    ],
)
def test_text_in_a_record_that_does_not_parse_is_not_quoted(value: bytes) -> None:
    assert MARKER not in refused(value).message


def test_text_is_not_quoted_when_another_field_fails() -> None:
    rejection = refused(orjson.dumps({**COMPLAINT, "severity": "urgent", "text": MARKER}))
    assert rejection.message.startswith("/severity: ")
    assert MARKER not in rejection.message


@pytest.mark.parametrize("field", ["category", "severity", "channel", "event_id"])
def test_a_container_in_another_field_is_not_quoted(field: str) -> None:
    # Not free text by the schema, but a container may hold anything, the text included.
    rejection = refused(orjson.dumps({**COMPLAINT, field: {"text": MARKER}}))
    assert rejection.message.startswith(f"/{field}: ")
    assert MARKER not in rejection.message


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


# The marker inside any shape of text: long strings, and containers of any JSON.
texts = st.one_of(
    st.integers(min_value=1, max_value=2000).map(lambda n: MARKER * n),
    json_values.map(lambda v: [v, MARKER]),
    json_values.map(lambda v: {MARKER: v}),
)


@settings(max_examples=300, deadline=None)
@given(text=texts)
def test_no_rejection_quotes_the_text(text: Any) -> None:
    result = decode(orjson.dumps({**COMPLAINT, "text": text}), topic="complaints", key=b"c1")
    if isinstance(result, Rejection):
        assert MARKER not in result.message
