"""Every example in schemas/examples/ is judged as its file name says.

Generic over whatever files are present: an output schema added with examples is covered
without touching this file. Input topics go through `decode` (the real boundary, bytes
in); everything else through `validate_output`.
"""

from __future__ import annotations

import orjson
import pytest

from streams import contracts
from streams.contracts import ContractViolation, Decoded, decode, validate_output
from streams.core.errors import Rejection

EXAMPLES = contracts.SCHEMAS_DIR / "examples"


def _cases(kind: str) -> list[tuple[str, int, bytes]]:
    cases = []
    for path in sorted(EXAMPLES.glob(f"*.{kind}.jsonl")):
        name = path.name.removesuffix(f".{kind}.jsonl")
        for number, line in enumerate(path.read_bytes().splitlines(), 1):
            if line.strip():
                cases.append((name, number, line))
    return cases


def _id(case: tuple[str, int, bytes]) -> str:
    return f"{case[0]}:{case[1]}"


VALID = _cases("valid")
INVALID = _cases("invalid")


def test_every_example_file_names_a_schema() -> None:
    names = {p.name.split(".", 1)[0] for p in EXAMPLES.glob("*.jsonl")}
    assert names <= set(contracts.SCHEMA_NAMES)
    for path in EXAMPLES.glob("*.jsonl"):
        assert path.name.endswith((".valid.jsonl", ".invalid.jsonl")), path.name


@pytest.mark.parametrize("name", [*contracts.INPUT_TOPICS, contracts.DLQ_TOPIC])
def test_our_schemas_have_both_kinds_of_example(name: str) -> None:
    assert (EXAMPLES / f"{name}.valid.jsonl").is_file()
    assert (EXAMPLES / f"{name}.invalid.jsonl").is_file()


@pytest.mark.parametrize("case", VALID, ids=_id)
def test_valid_example_is_accepted(case: tuple[str, int, bytes]) -> None:
    name, _, line = case
    if name in contracts.INPUT_TOPICS:
        result = decode(line, topic=name)
        assert isinstance(result, Decoded), result
        assert result.topic == name
    else:
        validate_output(name, orjson.loads(line))


@pytest.mark.parametrize("case", INVALID, ids=_id)
def test_invalid_example_is_refused(case: tuple[str, int, bytes]) -> None:
    name, _, line = case
    if name in contracts.INPUT_TOPICS:
        assert isinstance(decode(line, topic=name), Rejection)
        return
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return  # not even JSON: refused
    with pytest.raises(ContractViolation):
        validate_output(name, record)


# Each of our invalid examples breaks exactly one rule; pin which, so an example that
# fails for an accidental reason (a typo elsewhere in the line) is caught.
EXPECTED_INPUT_REJECTIONS: dict[str, list[tuple[str, str]]] = {
    "orders": [
        ("schema_violation", "/amount:"),
        ("schema_violation", "/amount:"),
        ("schema_violation", "/amount:"),
        ("schema_violation", "/currency:"),
        ("schema_violation", "/currency:"),
        ("schema_violation", "/order_id: required"),
        ("schema_violation", "/amount: required"),
        ("schema_violation", "/occurred_at:"),
        ("schema_violation", "/occurred_at:"),
        ("schema_violation", "/occurred_at:"),
        ("schema_violation", "/occurred_at:"),
        ("schema_violation", "/occurred_at:"),
        ("schema_violation", "/occurred_at:"),
        ("schema_violation", "/event_id:"),
        ("schema_violation", "/customer_id:"),
        ("schema_violation", "/customer_id:"),
        ("schema_violation", "/customer_id:"),
        ("schema_violation", "/items:"),
        ("schema_violation", "/items:"),
        ("schema_violation", "/discount:"),
        ("schema_violation", "/channel:"),
        ("unknown_type", "/type:"),
        ("wrong_topic", "/type:"),
        ("schema_violation", "/type: required"),
        ("schema_violation", "/type:"),
        ("invalid_json", "unexpected character"),
        ("invalid_json", "unexpected end of data"),
        ("not_an_object", "value is a JSON array"),
        ("not_an_object", "value is a JSON null"),
    ],
    "complaints": [
        ("schema_violation", "/category:"),
        ("schema_violation", "/severity:"),
        ("schema_violation", "/severity:"),
        ("schema_violation", "/complaint_id: required"),
        ("schema_violation", "/category: required"),
        ("schema_violation", "/text:"),
        ("schema_violation", "/text:"),
        ("unknown_type", "/type:"),
        ("wrong_topic", "/type:"),
        ("schema_violation", "/occurred_at:"),
        ("invalid_json", "not valid UTF-8"),
    ],
    "interactions": [
        ("schema_violation", "/nps: not allowed"),
        ("schema_violation", "/csat: not allowed"),
        ("schema_violation", "/nps:"),
        ("schema_violation", "/nps:"),
        ("schema_violation", "/nps:"),
        ("schema_violation", "/csat:"),
        ("schema_violation", "/csat:"),
        ("schema_violation", "/ces:"),
        ("schema_violation", "/ces:"),
        ("schema_violation", "/channel:"),
        ("unknown_type", "/type:"),
        ("wrong_topic", "/type:"),
        ("schema_violation", "/customer_id: required"),
        ("schema_violation", "/event_id:"),
        ("schema_violation", "/occurred_at:"),
        ("schema_violation", "/occurred_at:"),
        ("invalid_json", "unexpected content after document"),
        ("invalid_json", "unexpected character"),
    ],
}


@pytest.mark.parametrize("topic", sorted(EXPECTED_INPUT_REJECTIONS))
def test_input_invalid_examples_fail_for_the_intended_reason(topic: str) -> None:
    lines = (EXAMPLES / f"{topic}.invalid.jsonl").read_bytes().splitlines()
    got = []
    for line in lines:
        result = decode(line, topic=topic)
        assert isinstance(result, Rejection)
        got.append(result)
    expected = EXPECTED_INPUT_REJECTIONS[topic]
    assert len(got) == len(expected)
    for number, (rejection, (code, prefix)) in enumerate(zip(got, expected, strict=True), 1):
        assert rejection.code == code, (number, rejection)
        assert rejection.message.startswith(prefix), (number, rejection)


def test_input_schemas_share_one_envelope() -> None:
    # Each input schema is self-contained (a consumer can take one file alone), so the
    # common definitions are repeated; this keeps the copies identical.
    defs = [contracts.schema(topic)["$defs"] for topic in contracts.INPUT_TOPICS]
    assert defs[0] == defs[1] == defs[2]
    for topic in contracts.INPUT_TOPICS:
        doc = contracts.schema(topic)
        assert {"event_id", "customer_id", "occurred_at", "type"} <= set(doc["required"])
