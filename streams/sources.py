"""History files in: JSONL (plain or gzip), CSV (plain or gzip) and Parquet, with a
column mapping from an export's names to the event fields.

Replay and bootstrap read a history through `open_history`. JSONL lines go to the
boundary as they are (`History.lines`). A CSV or Parquet row becomes an event first
(`History.rows`): the mapping (`Mapping`, a small TOML file) names the column of each
event field, constants, and translations of values; without a mapping every column
whose name is an event field is that field. A row that cannot become an event is
refused with its number and the reason, as a line that is not JSON is.

Readers are the well-kept ones: the standard library's `csv` and `gzip`, and Apache
Arrow's `pyarrow.parquet`, which reads a Parquet file a batch of rows at a time and only
the columns the mapping names.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import tomllib
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import IO, Any, Final, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from streams.contracts import INPUT_TOPICS, schema
from streams.core.errors import GradestreamError, Rejection


class Format(StrEnum):
    """The kinds of history file (gzip is recognised by its first bytes, apart)."""

    jsonl = "jsonl"
    csv = "csv"
    parquet = "parquet"


_SUFFIXES: Final[dict[str, Format]] = {
    ".jsonl": Format.jsonl,
    ".ndjson": Format.jsonl,
    ".json": Format.jsonl,
    ".csv": Format.csv,
    ".parquet": Format.parquet,
    ".pq": Format.parquet,
}
_GZIP_MAGIC: Final = b"\x1f\x8b"
_PARQUET_MAGIC: Final = b"PAR1"
# A row as `History.rows` gives it: its number, its bytes for a dead letter (the row's
# columns as a JSON object), and the event it maps to, or why it maps to none.
Row = tuple[int, bytes, Any]


class HistoryError(GradestreamError):
    """A history file or mapping that cannot be read at all (not one bad row)."""


def _event_fields() -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """The input schemas' field names, and which hold integers and numbers."""
    names: set[str] = set()
    integers: set[str] = set()
    numbers: set[str] = set()
    for topic in INPUT_TOPICS:
        for name, spec in schema(topic)["properties"].items():
            names.add(name)
            kind = spec.get("type") if isinstance(spec, dict) else None
            if kind == "integer":
                integers.add(name)
            elif kind == "number":
                numbers.add(name)
    return frozenset(names), frozenset(integers), frozenset(numbers)


FIELDS, INTEGER_FIELDS, NUMBER_FIELDS = _event_fields()


class Mapping(BaseModel):
    """How an export's rows become events (a TOML file; docs/contracts.md, "History
    files"). Every key is checked: an unknown one is refused, naming it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fields: dict[str, str] = Field(
        default_factory=dict, description="event field = the export's column holding it"
    )
    set: dict[str, str | int | float] = Field(
        default_factory=dict, description="event field = a constant for every row"
    )
    values: dict[str, dict[str, str]] = Field(
        default_factory=dict, description="event field -> {export's value = event value}"
    )
    timezone: str | None = Field(
        None, description="IANA zone of timestamps written without an offset"
    )

    @field_validator("fields", "set", "values")
    @classmethod
    def _known_fields(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(value) - FIELDS)
        if unknown:
            raise ValueError(f"{unknown[0]!r} is not an event field (one of {sorted(FIELDS)})")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise ValueError(f"{value!r} is not an IANA time zone") from exc
        return value


def load_mapping(path: Path) -> Mapping:
    try:
        return Mapping.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise HistoryError(f"mapping {path}: {exc}") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise HistoryError(f"mapping {path}: {where}: {first['msg']}") from exc


def detect_format(path: Path) -> Format:
    """By the name (ignoring a .gz), else by the first bytes."""
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    if suffixes and suffixes[-1] in _SUFFIXES:
        return _SUFFIXES[suffixes[-1]]
    with path.open("rb") as f:
        head = f.read(4)
        if head == _PARQUET_MAGIC:
            return Format.parquet
        if head.startswith(_GZIP_MAGIC):
            head = gzip.GzipFile(fileobj=io.BytesIO(head + f.read(1 << 16))).read(64)
    if head.lstrip()[:1] == b"{":
        return Format.jsonl
    raise HistoryError(f"{path}: cannot tell its format from its name; give --format")


@dataclass
class History:
    """An opened history: JSONL `lines` (raw, numbered from 1 by the reader) or `rows`,
    and `position()`, bytes of the file read so far (for a progress bar)."""

    lines: IO[bytes] | None
    rows: Iterator[Row] | None
    position: Callable[[], int]


def open_history(
    path: Path, stack: ExitStack, fmt: Format | None = None, mapping: Mapping | None = None
) -> History:
    """Open `path` for reading inside `stack` (closed with it)."""
    fmt = fmt or detect_format(path)
    if fmt == Format.parquet:
        return _parquet(path, mapping or Mapping())
    raw = stack.enter_context(path.open("rb"))
    stream: IO[bytes] = raw
    if raw.peek(2)[:2] == _GZIP_MAGIC:
        stream = cast(IO[bytes], stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb")))
    if fmt == Format.jsonl:
        if mapping is not None:
            raise HistoryError("--mapping is for CSV and Parquet files; JSONL holds events")
        return History(stream, None, raw.tell)
    text = stack.enter_context(io.TextIOWrapper(stream, encoding="utf-8", newline=""))
    return History(None, _csv_rows(text, mapping or Mapping()), raw.tell)


def _csv_rows(text: IO[str], mapping: Mapping) -> Iterator[Row]:
    """The rows of a CSV file; its header is read (and checked against the mapping) now."""
    reader = csv.DictReader(text, restkey="(more values than the header has columns)")
    try:
        columns = list(reader.fieldnames or [])
    except (UnicodeDecodeError, csv.Error) as exc:
        raise HistoryError(f"the CSV header cannot be read: {exc}") from exc
    event = _mapper(mapping, columns)

    def rows() -> Iterator[Row]:
        try:
            for row in reader:
                yield reader.line_num, orjson.dumps(row), event(row, reader.line_num)
        except (UnicodeDecodeError, csv.Error) as exc:
            raise HistoryError(f"CSV line {reader.line_num + 1}: {exc}") from exc

    return rows()


def _parquet(path: Path, mapping: Mapping) -> History:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow's errors share no base class worth naming
        raise HistoryError(f"{path}: not a readable Parquet file: {exc}") from exc
    columns = list(parquet.schema_arrow.names)
    event = _mapper(mapping, columns)
    wanted = list(mapping.fields.values()) if mapping.fields else None
    size = path.stat().st_size
    done = [0]

    def rows() -> Iterator[Row]:
        n = 0
        for batch in parquet.iter_batches(batch_size=1 << 16, columns=wanted):
            for row in batch.to_pylist():
                n += 1
                yield n, orjson.dumps(row, default=str), event(row, n)
            done[0] += batch.num_rows
        done[0] = parquet.metadata.num_rows

    total = max(parquet.metadata.num_rows, 1)
    return History(None, rows(), lambda: size * done[0] // total)


def _mapper(mapping: Mapping, columns: list[str]) -> Callable[[dict[str, Any], int], Any]:
    """The function that maps one row (column -> value) to an event or a Rejection."""
    missing = sorted(set(mapping.fields.values()) - set(columns))
    if missing:
        raise HistoryError(f"the mapping names column {missing[0]!r}, which the file lacks")
    if mapping.fields:
        pairs = list(mapping.fields.items())
    else:
        pairs = [(c, c) for c in columns if c in FIELDS]
        if not {"customer_id", "occurred_at"} <= {c for c, _ in pairs}:
            raise HistoryError(
                "the file's columns are not event fields (no customer_id and occurred_at): "
                "give a --mapping"
            )
    zone = ZoneInfo(mapping.timezone) if mapping.timezone else None

    def event(row: dict[str, Any], n: int) -> Any:
        out: dict[str, Any] = {}
        for field, column in pairs:
            value = row.get(column)
            if value is None or value == "":
                continue
            table = mapping.values.get(field)
            if table is not None and isinstance(value, str):
                value = table.get(value, value)
            converted = _convert(field, value, zone)
            if isinstance(converted, Rejection):
                return Rejection(
                    "bad_row", f"row {n}: column {column!r} ({field}): {converted.message}"
                )
            out[field] = converted
        out.update(mapping.set)
        if "event_id" not in out:
            out["event_id"] = _content_id(out)
        if "order_id" not in out and str(out.get("type", "")).startswith("order_"):
            out["order_id"] = out["event_id"]
        return out

    return event


def _convert(field: str, value: Any, zone: ZoneInfo | None) -> Any:
    """A column's value as the event field's JSON type, or a Rejection saying why not
    (never quoting it: a column may hold free text)."""
    if field in INTEGER_FIELDS or field in NUMBER_FIELDS:
        if isinstance(value, Decimal):
            value = float(value)
        if isinstance(value, str):
            try:
                value = int(value) if value.lstrip("+-").isdigit() else float(value)
            except ValueError:
                return Rejection("bad_row", "not a number")
        if field in INTEGER_FIELDS and isinstance(value, float) and value.is_integer():
            value = int(value)
        return value
    if field == "occurred_at":
        if isinstance(value, str) and zone is not None:
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                return Rejection("bad_row", "not an ISO 8601 date-time")
            value = parsed if parsed.tzinfo is None else value
        if isinstance(value, datetime):
            if value.tzinfo is None:
                if zone is None:
                    return Rejection("bad_row", "a date-time without a zone: set timezone")
                value = value.replace(tzinfo=zone)
            return _rfc3339(value)
        return value
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        return str(value)  # an id or code stored as a number
    return value


def _rfc3339(value: datetime) -> str:
    utc = value.astimezone(UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond:06d}".rstrip("0")
    return text + "Z"


def _content_id(event: dict[str, Any]) -> str:
    """An event_id for a row that has none: the hash of what it says, so the same row
    exported twice is one event (and applied once)."""
    digest = hashlib.blake2b(orjson.dumps(event, option=orjson.OPT_SORT_KEYS), digest_size=12)
    return "row-" + digest.hexdigest()
