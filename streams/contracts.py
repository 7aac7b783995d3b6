"""The boundary: raw Kafka/file bytes in, a schema-valid event dict or a Rejection out.

`schemas/*.json` (JSON Schema draft 2020-12) are the only copy of the rules. This module
loads every file there once, at import, compiles it with jsonschema-rs (a Rust validator;
a valid event decodes and validates in a few microseconds) and adds only what a schema
cannot say: size and depth limits, which topic a type belongs on, and the key rule.

Rejection codes are stable; docs/contracts.md lists them with examples.

>>> decode(b'{"type": "order_placed"}', topic="complaints").code
'wrong_topic'
>>> decode(b'{"amount": -1').message
'unexpected end of data: line 1 column 14 (char 13)'
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, NamedTuple

import jsonschema_rs
import orjson

import streams
from streams.core.errors import GradestreamError, Rejection

__all__ = [
    "DLQ_TOPIC",
    "FREE_TEXT_FIELDS",
    "INPUT_TOPICS",
    "MAX_DEPTH",
    "MAX_VALUE_BYTES",
    "REJECTION_CODES",
    "SCHEMAS_DIR",
    "SCHEMA_NAMES",
    "TOPIC_OF_TYPE",
    "ContractViolation",
    "Decoded",
    "SchemaLoadError",
    "check",
    "dead_letter",
    "decode",
    "parse",
    "schema",
    "schema_sources",
    "validate_output",
]


def _schemas_dir() -> Path:
    """GRADESTREAM_SCHEMAS_DIR if set; else the package's copy, which a wheel carries
    (setup.py copies the repository's schemas/ into it when it is built); else the
    repository's schemas/ next to streams/ (a checkout, an editable install). Found from
    the package's __init__, not this module's __file__: compiled with mypyc, this
    module's __file__ can name a path that does not exist."""
    if override := os.environ.get("GRADESTREAM_SCHEMAS_DIR"):
        return Path(override)
    package = Path(streams.__file__).resolve().parent
    packaged = package / "schemas"
    return packaged if packaged.is_dir() else package.parent / "schemas"


SCHEMAS_DIR: Final[Path] = _schemas_dir()

INPUT_TOPICS: Final[tuple[str, ...]] = ("orders", "complaints", "interactions")
DLQ_TOPIC: Final = "gradestream-dlq"

# A value over 64 KiB is no event of ours (a large one is well under 1 KiB); refusing it
# before parsing bounds the CPU and memory one bad producer can take from a worker.
MAX_VALUE_BYTES: Final = 64 * 1024
# Known fields are all scalars. Extra fields may nest (forward compatibility), but not
# deeper than this: a re-keyed event is serialised again with orjson, whose encoder
# refuses more than 254 levels, and nothing of ours needs more than a few.
MAX_DEPTH: Final = 32
# Dead letters keep at most this much of the original value, so that base64 (4/3) plus
# the envelope stays under Kafka's default 1 MB record limit whatever arrived.
MAX_DLQ_VALUE_BYTES: Final = 256 * 1024
# Some rejection messages quote the offending value (an id, a type, a code); bound them so
# a 60 KiB string does not become a 60 KiB log line (the dead letter has the bytes anyway).
_MAX_MESSAGE: Final = 300

REJECTION_CODES: Final[Mapping[str, str]] = {
    "too_large": "the value is larger than MAX_VALUE_BYTES; not parsed",
    "invalid_json": "not UTF-8 or not JSON (truncated, NaN/Infinity, trailing bytes...)",
    "too_deep": "JSON nested deeper than MAX_DEPTH",
    "not_an_object": "valid JSON, but not an object",
    "unknown_type": "`type` is a string no input topic knows",
    "wrong_topic": "`type` belongs to another input topic than the one it arrived on",
    "schema_violation": "the event breaks its topic's JSON Schema; the message names the path",
    "key_mismatch": "the record key is not the body's customer_id",
    "bad_row": "a CSV or Parquet row that its mapping cannot make an event (streams/sources.py)",
}


class SchemaLoadError(GradestreamError):
    """schemas/ is missing, unreadable, or a schema in it does not compile."""


class ContractViolation(GradestreamError, ValueError):
    """A record breaks its topic's schema (raised by `validate_output`)."""

    def __init__(self, topic: str, path: str, reason: str) -> None:
        super().__init__(f"{topic}: {path}: {reason}")
        self.topic = topic
        self.path = path
        self.reason = reason


class Decoded(NamedTuple):
    """An input event that passed the boundary.

    `key` is the effective Kafka key, i.e. the body's customer_id; `rekeyed` is True when
    the record came without a key (or an empty one) and must be re-keyed before it is
    partitioned with its customer's state.
    """

    event: dict[str, Any]
    topic: str
    key: str
    rekeyed: bool


# Decoded(...) runs the NamedTuple's generated __new__, a Python frame per event; this
# builds the very same tuple in C (decode's hot path; the fields are always all given).
_new_decoded: Final = tuple.__new__


def _load(
    directory: Path,
) -> tuple[dict[str, dict[str, Any]], dict[str, Any], dict[str, jsonschema_rs.Validator]]:
    """Read and compile every schemas/*.json, resolving $refs between them without network.

    Returns the parsed schemas by name, by URI (file URI and $id) and the validators.
    """
    paths = sorted(directory.glob("*.json"))
    if not paths:
        raise SchemaLoadError(f"no JSON Schemas in {directory} (set GRADESTREAM_SCHEMAS_DIR)")
    docs: dict[str, dict[str, Any]] = {}
    for path in paths:
        try:
            doc = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise SchemaLoadError(f"{path}: {exc}") from exc
        if not isinstance(doc, dict):
            raise SchemaLoadError(f"{path}: a schema must be a JSON object")
        docs[path.stem] = doc

    by_filename = {f"{name}.json": doc for name, doc in docs.items()}

    # A relative $ref ("common.json#/$defs/x") resolves against the referring schema's $id
    # (or file URI when it has none). Whatever base the author chose, the file it names is
    # one of ours: look it up by file name, and never fetch anything over the network.
    def retrieve(uri: str) -> Any:
        filename = uri.split("#", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        if filename in by_filename:
            return by_filename[filename]
        raise SchemaLoadError(f"$ref to {uri}: no such schema in {directory}")

    resources: list[tuple[str, Any]] = []
    for name, doc in docs.items():
        resources.append(((directory / f"{name}.json").resolve().as_uri(), doc))
        if isinstance(doc.get("$id"), str) and doc["$id"] != resources[-1][0]:
            resources.append((doc["$id"], doc))
    try:
        registry = jsonschema_rs.Registry(resources, retriever=retrieve)
    except (jsonschema_rs.ReferencingError, ValueError) as exc:
        raise SchemaLoadError(f"{directory}: {exc}") from exc

    validators: dict[str, jsonschema_rs.Validator] = {}
    for name, doc in docs.items():
        try:
            jsonschema_rs.meta.validate(doc)
            validators[name] = jsonschema_rs.validator_for(
                doc,
                # Formats are annotations by default in 2020-12; we rely on date-time.
                validate_formats=True,
                ignore_unknown_formats=False,
                registry=registry,
                retriever=retrieve,
                base_uri=(directory / f"{name}.json").resolve().as_uri(),
            )
        except (jsonschema_rs.ValidationError, jsonschema_rs.ReferencingError, ValueError) as exc:
            raise SchemaLoadError(f"{directory / name}.json: {exc}") from exc
    return docs, dict(resources), validators


def _topic_of_type(docs: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Event type -> input topic, read from each input schema's `type` enum."""
    out: dict[str, str] = {}
    for topic in INPUT_TOPICS:
        try:
            types = docs[topic]["properties"]["type"]["enum"]
        except KeyError as exc:
            raise SchemaLoadError(f"{topic}.json: needs properties.type.enum") from exc
        for event_type in types:
            if event_type in out:
                raise SchemaLoadError(f"type {event_type!r} is in {out[event_type]} and {topic}")
            out[event_type] = topic
    return out


_DOCS, _BY_URI, _VALIDATORS = _load(SCHEMAS_DIR)
SCHEMA_NAMES: Final[tuple[str, ...]] = tuple(sorted(_DOCS))
TOPIC_OF_TYPE: Final[dict[str, str]] = _topic_of_type(_DOCS)
# Hot-path lookups: decode() touches only these.
_INPUT_VALIDATORS: Final = {topic: _VALIDATORS[topic] for topic in INPUT_TOPICS}
_INPUT_TOPIC_SET: Final = frozenset(INPUT_TOPICS)
# Fields an input schema marks `"x-free-text": true` (a complaint's `text`): personal data
# that no rejection message may quote, whatever shape or size it arrives in.
FREE_TEXT_FIELDS: Final[frozenset[str]] = frozenset(
    name
    for topic in INPUT_TOPICS
    for name, prop in _DOCS[topic].get("properties", {}).items()
    if isinstance(prop, dict) and prop.get("x-free-text") is True
)


def schema_sources() -> list[tuple[str, str, str]]:
    """(name, file URI, JSON text) of every schema: what the native boundary
    (`streams._native.Decoder`) compiles, as `_load` does here."""
    return [
        (path.stem, path.resolve().as_uri(), path.read_text(encoding="utf-8"))
        for path in sorted(SCHEMAS_DIR.glob("*.json"))
    ]


def schema(name: str) -> dict[str, Any]:
    """The parsed schema `schemas/<name>.json` (shared; do not mutate)."""
    return _DOCS[name]


def _clip(text: str, limit: int = _MAX_MESSAGE) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _pointer(parts: list[str | int]) -> str:
    """RFC 6901 JSON Pointer; the whole document is shown as `/` for readability."""
    if not parts:
        return "/"
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _explain(error: jsonschema_rs.ValidationError) -> tuple[str, str]:
    """(path, reason) for a validation error, in the words a producer needs to fix it.

    The reason names the rule from the schema keyword. It quotes the value only where that
    helps (an enum, a pattern, a number out of range) and never the value of a free-text
    field nor a container: jsonschema's own message copies the instance, which may be
    personal data (`"text": ["..."]`) or anything else a producer nested there.
    """
    kind = error.kind
    path = _pointer(error.instance_path)
    kinds = jsonschema_rs.ValidationErrorKind
    if isinstance(kind, kinds.Required):
        return _pointer([*error.instance_path, kind.property]), "required property is missing"
    if isinstance(kind, kinds.FalseSchema):
        # Our only `false` schemas forbid a field for some event types (if/else).
        return path, "not allowed on this event type"
    if isinstance(kind, kinds.Type):
        wanted = " or ".join(_a(name) for name in kind.types)
        return path, f"must be {wanted}, not {_a(_json_kind(error.instance))}"
    if isinstance(kind, kinds.MaxLength):
        return path, f"longer than {kind.limit} characters"
    if isinstance(kind, kinds.MinLength):
        return path, f"shorter than {kind.limit} character{'' if kind.limit == 1 else 's'}"
    quotable = not (
        (error.instance_path and error.instance_path[0] in FREE_TEXT_FIELDS)
        or isinstance(error.instance, dict | list)
    )
    shown = _json_text(error.instance) if quotable else "the value"
    if isinstance(kind, kinds.Enum):
        options = ", ".join(_json_text(option) for option in kind.options)
        return path, f"{shown} is not one of {options}"
    if isinstance(kind, kinds.Pattern):
        # A regex says little to a producer; the schema may carry a plain-words hint.
        hint = _schema_node(error.absolute_keyword_location).get("x-pattern-hint")
        if isinstance(hint, str):
            return path, f"{shown} {hint}"
    if not quotable:
        return path, f"breaks the schema's `{error.schema_path[-1]}` rule"
    return path, error.message


def _a(kind: str) -> str:
    """A JSON type name with its article: "a string", "an object", "null"."""
    if kind == "null":
        return kind
    return ("an " if kind[0] in "aeiou" else "a ") + kind


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


def _schema_node(location: str | None) -> dict[str, Any]:
    """The schema object holding the keyword at `location` (an absolute URI#pointer)."""
    if location is None or "#" not in location:
        return {}
    base, pointer = location.split("#", 1)
    node: Any = _BY_URI.get(base, {})
    for part in pointer.split("/")[1:-1]:  # [1:]: leading "", [:-1]: the keyword itself
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict):
            node = node.get(part, {})
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return {}
    return node if isinstance(node, dict) else {}


def _too_deep(value: Any) -> bool:
    """Whether containers nest deeper than MAX_DEPTH (the top-level object is depth 1)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        children = node.values() if type(node) is dict else node
        stack.extend((c, depth + 1) for c in children if type(c) is dict or type(c) is list)
    return False


def decode(value: bytes, topic: str | None = None, key: bytes | None = None) -> Decoded | Rejection:
    """Parse and check one input record; never raises on bad input.

    `topic` is the topic it arrived on (None for a file: the type picks the topic).
    `key` is the Kafka key; missing or empty means "re-key by customer_id".
    Lateness is not judged here: the core does that against its own clock.
    """
    parsed = parse(value)
    if isinstance(parsed, Rejection):
        return parsed
    return check(parsed, value, topic, key)


def parse(value: bytes) -> Any:
    """The JSON value of one record's bytes, or the Rejection of bytes that are none
    (`decode`'s first half: replay parses once, routes by customer, then `check`s)."""
    size = len(value)
    if size > MAX_VALUE_BYTES:
        return Rejection("too_large", f"value is {size} bytes; the limit is {MAX_VALUE_BYTES}")
    try:
        # orjson refuses invalid UTF-8, NaN/Infinity and trailing bytes, and stops at 1024
        # levels of nesting; its message gives line, column and character position.
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        message = str(exc)
        if message.startswith(("depth limit", "Recursion limit")):
            return Rejection("too_deep", f"nested deeper than {MAX_DEPTH} levels")
        if "UTF-8" in message:
            # orjson checks UTF-8 up front and reports position 0; say where the bad byte is.
            try:
                value.decode()
            except UnicodeDecodeError as bad:
                return Rejection(
                    "invalid_json", f"not valid UTF-8: {bad.reason} at byte {bad.start}"
                )
        return Rejection("invalid_json", _clip(message))
    return obj


def check(
    obj: Any, value: bytes, topic: str | None = None, key: bytes | None = None
) -> Decoded | Rejection:
    """`decode`'s second half: check `obj`, what `parse(value)` gave (not a Rejection)."""
    if topic is not None and topic not in _INPUT_TOPIC_SET:
        # A programming error (the worker subscribed to something else), not bad input.
        raise ValueError(f"not an input topic: {topic!r}; expected one of {INPUT_TOPICS}")
    if type(obj) is not dict:
        return Rejection("not_an_object", f"value is a JSON {_json_kind(obj)}, not an object")
    # Known fields are scalars: only an event with a container pays for the depth walk.
    # A nested container needs a `[` or a `{` after the object's own (JSON has no other
    # spelling of them), so bytes without one skip the look at every field. (find, not
    # `in`: bytes.__contains__ first tries its argument as an int and raises inside.)
    if value.find(b"[") >= 0 or value.find(b"{", 1) >= 0:
        for field in obj.values():
            if type(field) is dict or type(field) is list:
                if _too_deep(obj):
                    return Rejection("too_deep", f"nested deeper than {MAX_DEPTH} levels")
                break

    event_type = obj.get("type")
    event_topic = TOPIC_OF_TYPE.get(event_type) if type(event_type) is str else None
    if event_topic is None:
        if type(event_type) is str:
            return Rejection("unknown_type", _clip(f"/type: {event_type!r} is not an event type"))
        if "type" not in obj:
            return Rejection("schema_violation", "/type: required property is missing")
        return Rejection(
            "schema_violation", f"/type: a JSON {_json_kind(event_type)}, not a string"
        )
    if topic is not None and topic != event_topic:
        return Rejection(
            "wrong_topic", f"/type: {event_type!r} belongs on topic {event_topic!r}, not {topic!r}"
        )

    validator = _INPUT_VALIDATORS[event_topic]
    if not validator.is_valid(obj):
        # Only a failing event pays for building the error.
        path, reason = _explain(next(iter(validator.iter_errors(obj))))
        return Rejection("schema_violation", _clip(f"{path}: {reason}"))

    customer_id: str = obj["customer_id"]
    if not key:
        return _new_decoded(Decoded, (obj, event_topic, customer_id, True))
    if key != customer_id.encode():
        return Rejection(
            "key_mismatch",
            _clip(f"key {_show_key(key)} is not the body's customer_id {customer_id!r}"),
        )
    return _new_decoded(Decoded, (obj, event_topic, customer_id, False))


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _show_key(key: bytes) -> str:
    try:
        return repr(key.decode())
    except UnicodeDecodeError:
        return repr(key)


def dead_letter(
    value: bytes, key: bytes | None, source: Mapping[str, Any], rejection: Rejection
) -> dict[str, Any]:
    """The gradestream-dlq record for a refused input (a dict ready for orjson.dumps).

    `source` is `{"topic", "partition", "offset"}` from Kafka or `{"file", "line"}` from a
    replay. The record has no wall-clock field, so a replay's dead letters are identical
    across runs. The record is checked against gradestream-dlq.json; a bad `source` or a
    rejection code outside `^[a-z][a-z0-9_]*$` is a programming error and raises.
    """
    record: dict[str, Any] = {
        "value_b64": base64.b64encode(value[:MAX_DLQ_VALUE_BYTES]).decode("ascii"),
        "value_size": len(value),
        "value_truncated": len(value) > MAX_DLQ_VALUE_BYTES,
        "key_b64": None if key is None else base64.b64encode(key).decode("ascii"),
        "source": dict(source),
        "rejection": {"code": rejection.code, "message": _clip(rejection.message, 1024)},
    }
    validate_output(DLQ_TOPIC, record)
    return record


def validate_output(topic: str, record: Any) -> None:
    """Check `record` against `schemas/<topic>.json`; raise ContractViolation if it breaks it.

    Works for every schema in schemas/ (inputs, outputs, dead letters). An unknown topic
    raises KeyError.
    """
    try:
        validator = _VALIDATORS[topic]
    except KeyError:
        raise KeyError(f"no schema {topic!r} in {SCHEMAS_DIR}; known: {SCHEMA_NAMES}") from None
    for error in validator.iter_errors(record):
        path, reason = _explain(error)
        raise ContractViolation(topic, path, _clip(reason, 1024))


def customer_in(parsed: Any) -> str | None:
    """The customer_id of a parsed record (None: none, or not an object), read before
    any check: which job of `replay --jobs N` grades the line (`Replayer.job_of`)."""
    if type(parsed) is dict:
        customer_id = parsed.get("customer_id")
        if type(customer_id) is str:
            return customer_id
    return None
