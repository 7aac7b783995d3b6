"""The output schemas, compiled with jsonschema-rs and a registry for their relative $refs.

tier-changes.json refers to "customer-grades.json" (and churn-risk.json /
lifecycle-changes.json to its $defs). Their "$id"s share a base
(https://schemas.gradestream.dev/), so a relative "$ref" resolves to the $id of the other
document; the `Registry` holds all four under their $ids, and the retriever refuses any
other URI, so nothing is ever fetched over the network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
OUTPUT_SCHEMAS = (
    "customer-grades",
    "tier-changes",
    "churn-risk",
    "lifecycle-changes",
    "tier-warnings",
)


def _refuse(uri: str) -> Any:
    raise ValueError(f"unexpected $ref to {uri}: every output schema is in the registry")


def load_validators() -> dict[str, Any]:
    docs = {n: orjson.loads((SCHEMAS / f"{n}.json").read_bytes()) for n in OUTPUT_SCHEMAS}
    registry = jsonschema_rs.Registry([(d["$id"], d) for d in docs.values()], retriever=_refuse)
    return {
        name: jsonschema_rs.validator_for(
            doc, registry=registry, retriever=_refuse, validate_formats=True
        )
        for name, doc in docs.items()
    }


VALIDATORS = load_validators()


def errors(topic: str, record: Any) -> list[str]:
    return [f"{e.instance_path}: {e.message}" for e in VALIDATORS[topic].iter_errors(record)]
