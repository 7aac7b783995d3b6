"""History files in other formats (streams/sources.py): the same events as JSONL, gzipped
JSONL, CSV with a column mapping, and Parquet replay to the very same bytes."""

from __future__ import annotations

import csv
import gzip
import re
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from streams.cli import app
from streams.contracts import Decoded, decode
from streams.core.policy import load_policy
from streams.replay import replay_file
from streams.simulate import generate
from streams.sources import (
    Format,
    HistoryError,
    Mapping,
    detect_format,
    load_mapping,
    open_history,
)


def _events() -> list[dict[str, Any]]:
    """A simulated history's valid events (a typed export cannot hold the malformed ones
    the simulator also makes)."""
    events = []
    for rec in generate(300, 200, 21):
        decoded = decode(rec.value)
        if isinstance(decoded, Decoded):
            events.append(decoded.event)
    return events


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same events in every format, and the CSV's mapping."""
    d = tmp_path_factory.mktemp("sources")
    events = _events()
    fields = sorted({k for e in events for k in e})
    lines = b"".join(orjson.dumps(e) + b"\n" for e in events)
    (d / "events.jsonl").write_bytes(lines)
    (d / "events.jsonl.gz").write_bytes(gzip.compress(lines))
    # An export's own names: every column renamed, and the types in its own words.
    with (d / "export.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow([f"x_{name}" for name in fields])
        for e in events:
            row = {**e, "type": e["type"].upper()}
            writer.writerow(["" if row.get(n) is None else row.get(n) for n in fields])
    kinds = sorted({e["type"] for e in events})
    mapping = "[fields]\n" + "".join(f'{n} = "x_{n}"\n' for n in fields)
    mapping += "[values.type]\n" + "".join(f'{k.upper()} = "{k}"\n' for k in kinds)
    (d / "export.toml").write_text(mapping, encoding="utf-8")
    columns = {n: [e.get(n) for e in events] for n in fields}
    # Amounts are floats in Parquet's typed column (5 becomes 5.0): the grades are equal.
    pq.write_table(pa.table(columns), d / "events.parquet")
    return {
        "jsonl": d / "events.jsonl",
        "gz": d / "events.jsonl.gz",
        "csv": d / "export.csv",
        "mapping": d / "export.toml",
        "parquet": d / "events.parquet",
    }


def _replay(source: Path, out: Path, mapping: Mapping | None = None) -> dict[str, Any]:
    out.mkdir()
    stats = replay_file(
        source,
        load_policy(),
        out / "out",
        out / "snap",
        out / "dlq",
        as_of=1_735_000_000,
        partitions=4,
        mapping=mapping,
    )
    return {
        "out": (out / "out").read_bytes(),
        "snap": (out / "snap").read_bytes(),
        "dead": dict(stats.dead_letters),
        "applied": stats.applied,
    }


def test_every_format_replays_to_the_same_bytes(history: dict[str, Path], tmp_path: Path) -> None:
    want = _replay(history["jsonl"], tmp_path / "jsonl")
    assert want["applied"] > 5000
    assert want["out"].count(b"\n") > 100
    got = {
        "gz": _replay(history["gz"], tmp_path / "gz"),
        "csv": _replay(history["csv"], tmp_path / "csv", load_mapping(history["mapping"])),
        "parquet": _replay(history["parquet"], tmp_path / "parquet"),
    }
    for name, result in got.items():
        assert result == want, name


def test_a_row_that_cannot_be_mapped_is_refused_with_its_row(tmp_path: Path) -> None:
    source = tmp_path / "orders.csv"
    source.write_text(
        "cust_no,order_ts,total,ccy\n"
        "c1,2025-01-05 10:00:00,120.5,EUR\n"
        "c1,2025-02-05 10:00:00,lots,EUR\n"
        "c2,2025-02-06T10:00:00+01:00,80,USD\n",
        encoding="utf-8",
    )
    mapping = Mapping(
        fields={"customer_id": "cust_no", "occurred_at": "order_ts", "amount": "total"}
        | {"currency": "ccy"},
        set={"type": "order_placed"},
        timezone="Europe/Berlin",
    )
    result = _replay(source, tmp_path / "out", mapping)
    assert result["applied"] == 2  # no event or order ids: derived from the row's content
    assert result["dead"] == {"bad_row": 1}
    dead = orjson.loads((tmp_path / "out" / "dlq").read_bytes())
    assert dead["source"] == {"file": str(source), "line": 3}
    assert dead["rejection"]["message"] == "row 3: column 'total' (amount): not a number"
    grades = [orjson.loads(line) for line in result["snap"].splitlines()]
    assert [g["customer_id"] for g in grades] == ["c1", "c2"]


def test_a_naive_time_needs_a_zone(tmp_path: Path) -> None:
    source = tmp_path / "orders.csv"
    source.write_text(
        "customer_id,occurred_at,type,amount,currency,order_id,event_id\n"
        "c1,2025-01-05 10:00:00,order_placed,5,USD,o1,e1\n",
        encoding="utf-8",
    )
    refused = _replay(source, tmp_path / "none")  # the header's names are event fields
    assert refused["dead"] == {"schema_violation": 1}
    zoned = _replay(source, tmp_path / "utc", Mapping(timezone="UTC"))
    assert zoned["applied"] == 1
    assert b'"as_of":"2025-01-05T10:00:00Z"' in zoned["snap"]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (
            '[fields]\ncustomer = "cust_no"\n',
            "fields: Value error, 'customer' is not an event field",
        ),
        ("[colums]\n", "colums: Extra inputs are not permitted"),
        ('timezone = "Mars/Olympus"\n', "'Mars/Olympus' is not an IANA time zone"),
        ("[fields\n", "mapping"),
    ],
)
def test_a_bad_mapping_is_refused_naming_the_key(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "m.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(HistoryError, match=re.escape(says)):
        load_mapping(path)


def test_a_mapping_naming_a_missing_column_is_refused_before_any_row(tmp_path: Path) -> None:
    source = tmp_path / "orders.csv"
    source.write_text("cust_no,order_ts\nc1,2025-01-05T10:00:00Z\n", encoding="utf-8")
    mapping = Mapping(fields={"customer_id": "cust_no", "amount": "total"})
    with ExitStack() as stack, pytest.raises(HistoryError, match="column 'total'"):
        open_history(source, stack, mapping=mapping)


def test_formats_are_told_by_name_or_by_their_first_bytes(
    history: dict[str, Path], tmp_path: Path
) -> None:
    assert detect_format(history["gz"]) == Format.jsonl
    assert detect_format(history["csv"]) == Format.csv
    for name in ("jsonl", "gz", "parquet"):
        renamed = tmp_path / f"{name}.export"
        renamed.write_bytes(history[name].read_bytes())
        assert detect_format(renamed) == (Format.parquet if name == "parquet" else Format.jsonl)
    unknown = tmp_path / "x.export"
    unknown.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(HistoryError, match="give --format"):
        detect_format(unknown)


def test_the_command_reads_a_csv_export(history: dict[str, Path], tmp_path: Path) -> None:
    runs = {}
    for name, extra in (("jsonl", []), ("csv", ["--mapping", str(history["mapping"])])):
        out = tmp_path / name
        out.mkdir()
        args = ["replay", str(history[name]), "--out", str(out / "o.jsonl")]
        args += ["--snapshot", str(out / "s.jsonl"), "--jobs", "2", *extra]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        runs[name] = [(out / n).read_bytes() for n in ("o.jsonl", "s.jsonl")]
    assert runs["csv"] == runs["jsonl"]


def test_the_command_refuses_a_bad_mapping_in_one_line(
    history: dict[str, Path], tmp_path: Path
) -> None:
    bad = tmp_path / "m.toml"
    bad.write_text('[fields]\ncustomer_id = "no_such_column"\n', encoding="utf-8")
    args = ["replay", str(history["csv"]), "--out", str(tmp_path / "o"), "--snapshot"]
    args += [str(tmp_path / "s"), "--mapping", str(bad)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "no_such_column" in result.output
    assert "Traceback" not in result.output
